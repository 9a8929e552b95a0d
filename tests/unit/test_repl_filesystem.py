"""What the REPL's code can read: only the Python it runs, system libraries, its workdir and a
private ``/tmp`` (deny by default; ``docs/sandbox.md``).

Each check runs ``tests/repl_fs_probe.py`` (a real ``ReplProcess`` with the real sandbox plan) in a
process of its own, once as root (as CI runs) and once as an ordinary user made for the session
(``useradd``), entered with ``setpriv``. That user's Python: the project's venv interpreter links to
a pyenv build under ``/root`` (mode 0700), which an ordinary user cannot reach, so the fixture makes a
venv *in the user's home* from the system's ``/usr/bin/python3`` (>= 3.11) with ``--without-pip``,
and puts this worktree on ``PYTHONPATH`` (``rlm_cli.repl`` needs only the standard library). That
also checks that a Python installation living under ``$HOME`` still works: it is bound alone.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rlm_cli.repl.sandbox import plan_sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")

ROOT = Path(__file__).resolve().parents[2]
PROBE = str(ROOT / "tests" / "repl_fs_probe.py")
TAG = uuid.uuid4().hex[:8]
HIDDEN = ("FileNotFoundError", "PermissionError")


def _isolated() -> bool:
    return plan_sandbox("/tmp/x").mount_namespace


def _plant(path: Path, text: str, owner: int | None = None, mode: int = 0o644) -> str:
    """Write ``text`` to ``path`` (parents made 0755), readable by others unless ``mode`` says not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in [path.parent, *path.parent.parents]:
        if owner is not None and str(parent).startswith("/home/"):
            os.chown(parent, owner, owner)
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)
    return str(path)


def _user_dirs(home: Path) -> tuple[Path, Path]:
    """rlm's log and data directories (platformdirs defaults) for a user whose HOME is ``home``."""
    return home / ".local" / "state" / "rlm" / "log", home / ".local" / "share" / "rlm"


@pytest.fixture(scope="session")
def ordinary_user():
    """(name, uid, gid, home, python): a fresh unprivileged user with a venv in its home; removed
    (with its home) afterwards. Skips when not root or without useradd/setpriv/python3 >= 3.11."""
    if os.geteuid() != 0:
        pytest.skip("making an ordinary user needs root")
    base = "/usr/bin/python3"
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("setpriv")):
        pytest.skip("useradd, userdel or setpriv (util-linux) is not available")
    if not os.path.exists(base) or subprocess.run(
            [base, "-c", "import sys; raise SystemExit(sys.version_info < (3, 11))"]).returncode:
        pytest.skip("no system python3 >= 3.11 an ordinary user can run")
    name = f"rlmt{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        entry = pwd.getpwnam(name)
        home = Path(entry.pw_dir)
        venv = home / "venv"
        as_user = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
        made = subprocess.run([*as_user, base, "-m", "venv", "--without-pip", str(venv)],
                              capture_output=True, text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
        if made.returncode:
            pytest.skip(f"cannot make a venv for the user: {made.stderr.strip()[-300:]}")
        yield name, entry.pw_uid, entry.pw_gid, home, str(venv / "bin" / "python")
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


def _run_probe(cmd: list[str], env: dict, rundir: Path, paths: list[str]) -> dict:
    proc = subprocess.run([*cmd, PROBE, str(rundir), *paths], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _check(result: dict, secrets: dict[str, str]) -> None:
    """Every secret unreadable, and the REPL still works."""
    for path, text in secrets.items():
        assert result["reads"][path] in HIDDEN, f"REPL code read {path}: {result['reads'][path]!r}"
        assert text not in json.dumps(result), f"{path}'s text showed up"
    assert result["works"], result["errors"]
    works = result["works"]
    assert works["context"] == "the context\n" and works["files"] == {"a.txt": "the context\n"}
    assert works["mine"] == "kept" and result["on_host"] == "kept" and works["sqlite"] == 42 and works["sh"] == "shell\n"
    assert works["tmp"] == "scratch" and not result["host_tmp_scratch"]  # a private /tmp
    assert result["final"] == "answer: the context"


@pytest.mark.skipif(not _isolated(), reason="no mount namespace on this system: the REPL sees the host's files")
@pytest.mark.parametrize("kind", ["unshare", "bwrap"])
@pytest.mark.parametrize("python", ["venv", "system"])
def test_repl_as_root_reads_nothing_of_homes_tmp_var_or_rlm_data(kind, python):
    """``venv``: this venv (here its base is a pyenv build under /root, so the REPL keeps uid 0 in a
    user namespace); ``system``: /usr/bin/python3, readable by others, so the REPL runs as uid 65534."""
    if kind == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    interpreter = sys.executable if python == "venv" else "/usr/bin/python3"
    if python == "system" and (not os.path.exists(interpreter) or subprocess.run(
            [interpreter, "-c", "import sys; raise SystemExit(sys.version_info < (3, 11))"]).returncode):
        pytest.skip("no system python3 >= 3.11")
    if os.geteuid() != 0:
        pytest.skip("this variant runs as root (as CI does); see the ordinary-user variant")
    home = Path(f"/home/rlmfs-root-{TAG}")  # a HOME of its own: the real /root/.local is not touched
    rundir = Path(f"/tmp/rlm-fs-root-{TAG}-{kind}-{python}")
    log, data = _user_dirs(home)
    secrets = {
        _plant(home / ".bash_history", "rlm ask --password hunter2"): "hunter2",
        _plant(Path(f"/root/.rlm-fs-secret-{TAG}"), "ROOT-SECRET-7", mode=0o600): "ROOT-SECRET-7",
        _plant(Path(f"/home/rlmfs-other-{TAG}/notes.txt"), "OTHER-HOME-SECRET"): "OTHER-HOME-SECRET",
        _plant(Path(f"/tmp/rlm-fs-secret-{TAG}"), "TMP-SECRET-1"): "TMP-SECRET-1",
        _plant(Path(f"/var/tmp/rlm-fs-secret-{TAG}"), "VAR-SECRET-2"): "VAR-SECRET-2",
        _plant(log / "2024-01-01-alice.json", '{"answer": "ALICE-SECRET-42"}'): "ALICE-SECRET-42",
        _plant(data / "conversations" / "bob.json", "BOB-DATA-SECRET"): "BOB-DATA-SECRET",
        _plant(rundir / "repl" / "r1" / "other.txt", "SIBLING-REPL-SECRET"): "SIBLING-REPL-SECRET",
    }
    rundir.chmod(0o711)  # as ``rlm ask`` makes its run directory, right under /tmp
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT), "RLM_PROBE_SANDBOX": kind}
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "RLM_HOME"):
        env.pop(var, None)
    try:
        result = _run_probe([interpreter], env, rundir, list(secrets))
    finally:
        for path in (home, Path(f"/home/rlmfs-other-{TAG}"), rundir):
            shutil.rmtree(path, ignore_errors=True)
        for path in (f"/root/.rlm-fs-secret-{TAG}", f"/tmp/rlm-fs-secret-{TAG}", f"/var/tmp/rlm-fs-secret-{TAG}"):
            Path(path).unlink(missing_ok=True)
    if result["kind"] != kind:
        pytest.skip(f"{kind} cannot create namespaces here (the plan fell back to {result['kind']})")
    _check(result, secrets)
    if python == "system" and kind == "unshare":
        assert result["run_as"] == 65534  # the allowlist does not stop the REPL from dropping root


@pytest.mark.skipif(not _isolated(), reason="no mount namespace on this system: the REPL sees the host's files")
@pytest.mark.parametrize("kind", ["unshare", "bwrap"])
def test_repl_as_an_ordinary_user_reads_nothing_of_its_home_tmp_var_or_rlm_data(ordinary_user, kind):
    if kind == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    name, uid, gid, home, python = ordinary_user
    log, data = _user_dirs(home)
    rundir = Path(f"/tmp/rlm-fs-user-{TAG}-{kind}")
    rundir.mkdir(mode=0o711)
    os.chown(rundir, uid, gid)
    secrets = {
        _plant(home / ".bash_history", "rlm ask --password hunter2", uid, 0o600): "hunter2",
        _plant(home / ".mozilla" / "firefox" / "p" / "logins.json", "FIREFOX-LOGIN", uid, 0o600): "FIREFOX-LOGIN",
        _plant(Path(f"/home/rlmfs-other-{TAG}/notes.txt"), "OTHER-HOME-SECRET"): "OTHER-HOME-SECRET",
        _plant(Path(f"/tmp/rlm-fs-secret-{TAG}"), "TMP-SECRET-1"): "TMP-SECRET-1",
        _plant(Path(f"/var/tmp/rlm-fs-secret-{TAG}"), "VAR-SECRET-2"): "VAR-SECRET-2",
        _plant(log / "2024-01-01-alice.json", '{"answer": "ALICE-SECRET-42"}', uid, 0o600): "ALICE-SECRET-42",
        _plant(data / "conversations" / "bob.json", "BOB-DATA-SECRET", uid, 0o600): "BOB-DATA-SECRET",
        _plant(rundir / "repl" / "r1" / "other.txt", "SIBLING-REPL-SECRET", uid, 0o600): "SIBLING-REPL-SECRET",
    }
    for path in (rundir / "repl", rundir / "repl" / "r1"):
        os.chown(path, uid, gid)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8",
           "TMPDIR": str(rundir), "RLM_PROBE_SANDBOX": kind}
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", python]
    try:
        result = _run_probe(as_user, env, rundir, list(secrets))
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
        shutil.rmtree(f"/home/rlmfs-other-{TAG}", ignore_errors=True)
        for path in (f"/tmp/rlm-fs-secret-{TAG}", f"/var/tmp/rlm-fs-secret-{TAG}"):
            Path(path).unlink(missing_ok=True)
    assert result["run_as"] is None  # really an ordinary user
    if result["kind"] != kind:
        pytest.skip(f"{kind} cannot create namespaces here (the plan fell back to {result['kind']})")
    _check(result, secrets)


@pytest.mark.skipif(not _isolated(), reason="no mount namespace on this system")
def test_a_root_that_cannot_be_built_falls_back_to_the_read_only_host_and_says_so(tmp_path, monkeypatch):
    import asyncio

    from rlm_cli.repl import sandbox
    from rlm_cli.repl.process import ReplProcess
    from rlm_cli.repl.visible import VisibleRoot

    monkeypatch.setattr(sandbox, "_ANNOUNCED", set())
    workdir = tmp_path / "repl" / "r0"
    plan = plan_sandbox(str(workdir))
    if plan.kind != "unshare":
        pytest.skip("the child's own lockdown runs with unshare only")
    plan.root = VisibleRoot(read_only=["/nonexistent-rlm-path/x"], links=[])  # its bind mount fails
    (tmp_path / "c.txt").write_text("ctx\n")

    async def main():
        repl = ReplProcess(tmp_path / "c.txt", [["a", 0, 4]], workdir, sandbox=plan)
        await repl.start()
        try:
            return await repl.execute("open('ok', 'w').write('1')\nprint(context, end='')\nopen('/usr/x', 'w')",
                                      lambda op, args: None, 10)
        finally:
            await repl.close()

    out = asyncio.run(main())
    assert out.stdout == "ctx\n" and "Read-only file system" in out.stderr
    assert any("could not give the REPL a filesystem of its own" in n and "read-only" in n for n in plan.notices)
