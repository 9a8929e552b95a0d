"""Supply chain: both lock files pin every package by hash, and litellm 1.82.7/1.82.8 (malicious
releases) can never be installed: not pinned, and excluded by pyproject's specifier."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.lock", "requirements-dev.lock")
MALICIOUS_LITELLM = ("1.82.7", "1.82.8")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def parse_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{normalised name: (version, [hashes])}`` from a pip-compile/uv lock file.

    Each requirement is one logical line (backslash continuations joined); comments are skipped.
    Anything that is not ``name==version`` with hashes (a URL, ``-e``, an unpinned name) is returned
    with version ``""`` so the tests below fail on it.
    """
    logical: list[str] = []
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf.strip():
        logical.append(buf)
    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in logical:
        if entry.startswith("--") and not entry.startswith("--hash"):
            continue  # global options such as --index-url
        match = _PIN.match(entry)
        bare = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", entry)
        name = match.group(1) if match else (bare.group(0) if bare else entry)
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", entry)
        pins[re.sub(r"[-_.]+", "-", name).lower()] = (match.group(3) if match else "", hashes)
    return pins


@pytest.fixture(params=LOCKS)
def lock(request) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    path = ROOT / request.param
    assert path.is_file(), f"{request.param} is missing"
    return request.param, parse_lock(path)


def test_lock_is_not_empty(lock):
    name, pins = lock
    assert len(pins) > 10, name


def test_every_package_is_pinned_with_a_hash(lock):
    name, pins = lock
    unpinned = sorted(pkg for pkg, (version, _) in pins.items() if not version)
    unhashed = sorted(pkg for pkg, (_, hashes) in pins.items() if not hashes)
    assert not unpinned, f"{name}: not pinned with ==: {unpinned}"
    assert not unhashed, f"{name}: no --hash=: {unhashed}"


def test_lock_pins_a_safe_litellm(lock):
    name, pins = lock
    assert "litellm" in pins, f"{name} does not pin litellm"
    version = pins["litellm"][0]
    assert Version(version) not in {Version(v) for v in MALICIOUS_LITELLM}, f"{name} pins litellm {version}"


def test_runtime_lock_is_a_subset_of_dev_lock():
    runtime, dev = parse_lock(ROOT / LOCKS[0]), parse_lock(ROOT / LOCKS[1])
    differing = {p: (v, dev.get(p, ("missing",))[0]) for p, (v, _) in runtime.items() if dev.get(p, ("",))[0] != v}
    assert not differing, f"versions differ between the lock files: {differing}"


def pyproject_litellm() -> Requirement:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    reqs = [Requirement(r) for r in doc["project"]["dependencies"]]
    found = [r for r in reqs if r.name.lower() == "litellm"]
    assert len(found) == 1, "pyproject must declare litellm exactly once"
    return found[0]


def test_pyproject_excludes_malicious_litellm():
    spec = pyproject_litellm().specifier
    for bad in MALICIOUS_LITELLM:
        assert not spec.contains(bad, prereleases=True), f"pyproject allows litellm {bad}"
    # explicit exclusions too, so widening the lower bound later cannot let them back in
    excluded = {s.version for s in spec if s.operator == "!="}
    assert set(MALICIOUS_LITELLM) <= excluded, f"pyproject's litellm specifier lacks != for {MALICIOUS_LITELLM}"


def test_locked_litellm_satisfies_pyproject():
    version = parse_lock(ROOT / LOCKS[0])["litellm"][0]
    assert pyproject_litellm().specifier.contains(version, prereleases=True)


def test_parser_catches_a_missing_hash(tmp_path):
    bad = tmp_path / "bad.lock"
    bad.write_text("good==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via x\nbare==2.0\nloose>=1\n")
    pins = parse_lock(bad)
    assert pins["good"] == ("1.0", ["sha256:" + "a" * 64])
    assert pins["bare"] == ("2.0", []) and pins["loose"][0] == ""


def _declared(extra: str | None) -> list[Requirement]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in (doc["dependencies"] if extra is None else doc["optional-dependencies"][extra])]


@pytest.mark.parametrize("lock_name, groups", [(LOCKS[0], (None,)), (LOCKS[1], (None, "dev"))])
def test_every_declared_dependency_is_locked_within_its_specifier(lock_name, groups):
    """A relock after a pyproject change (openai 3.x, tomlkit, pytest-xdist...) cannot be forgotten:
    each direct dependency is pinned, at a version its specifier allows."""
    pins = parse_lock(ROOT / lock_name)
    for group in groups:
        for req in _declared(group):
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            assert key in pins, f"{lock_name} does not pin {req.name} (pyproject: {req})"
            version = pins[key][0]
            assert req.specifier.contains(version, prereleases=True), \
                f"{lock_name} pins {req.name} {version}, outside pyproject's {req.specifier}"


def test_dev_dependencies_include_xdist():
    assert any(r.name == "pytest-xdist" for r in _declared("dev")), "pytest-xdist is a dev dependency"


def test_installer_lock_pins_a_pip_that_resolves_extras_within_the_lock():
    """pip < 23.3 (Python 3.11's bundled 23.2.1) resolves a dependency's extra (litellm's
    ``httpx[http2]``) past the locked pin and refuses the lock: the install upgrades pip first, from
    a hash-pinned lock of its own."""
    pins = parse_lock(ROOT / "requirements-pip.lock")
    assert set(pins) == {"pip"}, pins
    version, hashes = pins["pip"]
    assert version and hashes, "pip must be pinned with == and --hash="
    assert Version(version) >= Version("23.3")


def _readme_block_after(heading_fragment: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split(heading_fragment, 1)[1]
    return after.split("```", 2)[1]


def test_ci_installs_and_tests_exactly_as_the_readme_says():
    """CI proves the README: each step of the README's development install, then its test command,
    appears verbatim in .ci/run, with the pip lock first and no pip cache."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    setup = _readme_block_after("## Development").strip()
    steps = [s.strip() for s in setup.split("&&")]
    assert steps[1].startswith(".venv/bin/python -m pip install --require-hashes -r requirements-pip.lock")
    ci_lines = [line.strip() for line in ci.splitlines() if line.strip().startswith(".venv/bin/")]
    for step in steps[1:]:
        flags = step.split()
        assert any(line.split()[0] == flags[0] and set(flags) <= set(line.split()) for line in ci_lines), \
            f".ci/run does not run README's step: {step}"
    test_cmd = ci_lines[-1]
    assert f"\n{test_cmd}\n" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "PIP_NO_CACHE_DIR=1" in ci
    user_install = _readme_block_after("## Install").strip()
    assert "-r requirements-pip.lock" in user_install.split("&&")[1]
