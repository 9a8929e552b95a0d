"""Options that decide what a load takes in; shared by ``rlm ask`` and ``rlm ls``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_MAX_FILE_SIZE = 1_000_000  # bytes; files found by walking above this are skipped
DEFAULT_MAX_INPUT_SIZE = 200_000_000  # bytes; a load from directories above this stops with an error

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mi": 2**20, "mib": 2**20, "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
          "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes from a human size: ``"1000"``, ``"500KB"``, ``"2MiB"``, ``"1.5G"`` (SI for KB/MB/GB).

    Raises ``ValueError`` with a one-line message on anything else.
    """
    m = _SIZE_RE.match(str(text))
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 1000, 500KB, 2MiB, 1.5GB)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def format_size(n: int) -> str:
    """A byte count for humans, in SI units that :func:`parse_size` reads back: ``"999 B"``, ``"1.5 MB"``."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


@dataclass
class LoadOptions:
    """What to load from the given sources.

    ``include``/``exclude`` are gitignore-style patterns applied on top of git's own rules, matched
    against paths relative to each directory given (files named explicitly are always loaded);
    ``default_excludes`` adds :data:`DEFAULT_EXCLUDES` before ``exclude``. ``max_file_size`` (bytes)
    skips larger files found by walking; ``max_input_size`` (bytes) stops a load whose walked files
    add up to more. ``allow_remote``: URLs and git remotes may be fetched (``rlm serve`` says no);
    ``progress``: downloads and clones may show a progress bar on a terminal (``-q`` says no).
    ``digests``: fingerprint each file while it is written (``LoadedContext.digests``, what a saved
    conversation compares on ``rlm ask -c``); ``rlm ls`` needs none and says no.
    """

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    default_excludes: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    follow_symlinks: bool = False
    allow_remote: bool = True
    progress: bool = True
    digests: bool = True


# What wastes tokens without telling a model anything: applied to files found by walking a directory,
# like patterns given on git's command line (highest precedence). `--exclude '!PATTERN'` re-includes
# one; `--no-default-excludes` drops the list. Deliberately NOT here: `vendor/`. Go, PHP and Ruby
# projects often commit vendored code on purpose (and then it is what the user asks about), while an
# unwanted vendor/ is normally already in .gitignore. `node_modules/` and friends are never hand-written.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    # lock files
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb",
    "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "Cargo.lock", "Gemfile.lock",
    "composer.lock", "go.sum", "flake.lock", "mix.lock", "pubspec.lock", "Package.resolved",
    # minified bundles and source maps
    "*.min.js", "*.min.mjs", "*.min.css", "*.js.map", "*.mjs.map", "*.css.map",
    # installed dependencies and caches
    "node_modules/", "bower_components/", "jspm_packages/", ".venv/", "__pycache__/",
)
