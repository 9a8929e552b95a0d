"""What every benchmark does first: measure rlm as an installed copy runs, not as this checkout does.

``pip install`` writes each module's bytecode (``.pyc``) when it installs; an editable install of a
checkout writes it on first import, unless ``PYTHONDONTWRITEBYTECODE`` is set (as it is in some
development shells), in which case every ``rlm`` process compiles all of ``rlm_cli`` from source
again (~45 modules, 60-120 ms of CPU on these machines) and the numbers would charge that to rlm
while the reference, installed from a wheel, has its bytecode. :func:`as_installed` compiles
``rlm_cli`` once and removes the variable from this process's environment (which the benchmarks'
commands inherit). Returns a note for the benchmark's header.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def as_installed() -> str:
    """Compile ``rlm_cli`` to bytecode (quietly; already-current files are skipped) and drop
    ``PYTHONDONTWRITEBYTECODE`` from ``os.environ``; returns a one-line note saying so."""
    had = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    compileall.compile_dir(str(ROOT / "rlm_cli"), quiet=1)
    return ("bytecode: rlm_cli compiled as pip install would" +
            (" (PYTHONDONTWRITEBYTECODE removed for the measured commands)" if had else ""))


def children(pid: int) -> list[int]:
    """The child PIDs of every thread of ``pid`` (Linux /proc); empty once the process is gone."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return kids


def proc_kb(path: str, field: str) -> int:
    """The kB value of ``field`` (e.g. ``VmRSS:``) in a /proc file, 0 if the process is gone."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
