"""Generate ``completions/rlm.{bash,zsh,fish}`` from the CLI itself.

Each script is what ``_RLM_COMPLETE=source_<shell> rlm`` prints (Typer's completion support): a
small shim that calls ``rlm`` back on every Tab, so the scripts only change when Typer's templates
do. ``--check`` exits 1 (listing the stale files) instead of writing; ``tests/test_completions.py``
runs it. Usage::

    .venv/bin/python scripts/gen_completions.py [--check] [--rlm PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "completions"
SHELLS = {"bash": "rlm.bash", "zsh": "rlm.zsh", "fish": "rlm.fish"}


def default_rlm() -> Path:
    """The ``rlm`` console script installed next to the running interpreter."""
    return Path(sys.executable).parent / "rlm"


def generate(shell: str, rlm: Path | None = None) -> str:
    """The completion script for ``shell`` as printed by ``_RLM_COMPLETE=source_<shell> rlm``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_RLM_COMPLETE")}
    env["_RLM_COMPLETE"] = f"source_{shell}"
    proc = subprocess.run([str(rlm or default_rlm())], env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"rlm did not print a {shell} completion script (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[:300]}")
    return proc.stdout if proc.stdout.endswith("\n") else proc.stdout + "\n"


def stale(out_dir: Path = OUT_DIR, rlm: Path | None = None) -> list[Path]:
    """Completion files that are missing or differ from freshly generated ones."""
    return [out_dir / name for shell, name in SHELLS.items()
            if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != generate(shell, rlm)]


def write_all(out_dir: Path = OUT_DIR, rlm: Path | None = None) -> list[Path]:
    """(Re)write every completion file; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shell, name in SHELLS.items():
        (out_dir / name).write_text(generate(shell, rlm), encoding="utf-8")
        paths.append(out_dir / name)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale instead of writing")
    parser.add_argument("--rlm", type=Path, default=None, help="the rlm executable (default: next to python)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(rlm=args.rlm)
        for path in bad:
            print(f"stale: {path.relative_to(ROOT)} (run python scripts/gen_completions.py)", file=sys.stderr)
        return 1 if bad else 0
    for path in write_all(rlm=args.rlm):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
