"""Run one REPL (``ReplProcess`` with the real sandbox plan) and let its code try to read files.

Used by ``tests/unit/test_repl_filesystem.py`` as a separate process, so it can run as root or as an
ordinary user (under ``setpriv``). Needs only the standard library and ``rlm_cli`` (put the worktree
on ``PYTHONPATH`` when the interpreter is not the project's venv).

Usage: ``python repl_fs_probe.py RUNDIR PATH...`` (``RLM_PROBE_SANDBOX=bwrap``: as if ``unshare``
were missing, so bubblewrap is used where installed): the REPL's workdir is ``RUNDIR/repl/r0`` (the
context file is ``RUNDIR/context.txt``); its code tries to read every PATH and list a few directories.
Prints one JSON object: ``reads`` (path -> text read, or the exception's type name), ``listings``
(directory -> sorted names, or the exception's type name), ``works`` (what an honest step prints),
``final`` (the answer FINAL gave), ``on_host`` (the file the REPL wrote in its workdir, as the
host sees it), ``kind`` (the sandbox in use), ``errors`` (step errors).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from rlm_cli.repl import sandbox
from rlm_cli.repl.process import ReplProcess
from rlm_cli.repl.sandbox import plan_sandbox

READ = r"""
import json, os
reads, listings = {}, {}
for path in PATHS:
    try:
        with open(path) as fh:
            reads[path] = fh.read()
    except Exception as exc:
        reads[path] = type(exc).__name__
for path in ("/", "/home", "/root", "/tmp", "/var", "/etc", os.path.dirname(os.getcwd())):
    try:
        listings[path] = sorted(os.listdir(path))
    except Exception as exc:
        listings[path] = type(exc).__name__
print(json.dumps({"reads": reads, "listings": listings}))
"""

WORKS = r"""
import json, re, sqlite3, ctypes, decimal, hashlib, subprocess, tempfile, ssl
open("mine.txt", "w").write("kept")
with open(SCRATCH, "w") as fh:
    fh.write("scratch")
db = sqlite3.connect(":memory:")
print(json.dumps({"context": context, "files": dict(files), "mine": open("mine.txt").read(),
                  "tmp": open(SCRATCH).read(), "sqlite": db.execute("select 6*7").fetchone()[0],
                  "sh": subprocess.run(["sh", "-c", "echo shell"], capture_output=True, text=True).stdout,
                  "cwd": os.getcwd() if "os" in globals() else None}))
FINAL("answer: " + context.strip())
"""


async def _handler(op: str, args: dict) -> str:
    return f"sub:{op}"


async def probe(rundir: Path, paths: list[str]) -> dict:
    """Run the two steps in a fresh REPL under ``rundir``; the result described in the module doc."""
    ctx = rundir / "context.txt"
    ctx.write_text("the context\n")
    ctx.chmod(0o600)
    workdir = rundir / "repl" / "r0"
    workdir.parent.mkdir(mode=0o711, exist_ok=True)  # as ``rlm ask`` makes it: searchable, not listable
    plan = plan_sandbox(str(workdir))
    scratch = f"/tmp/rlm-probe-scratch-{rundir.name}"
    repl = ReplProcess(ctx, [["a.txt", 0, 12]], workdir, sandbox=plan)
    await repl.start()
    try:
        first = await repl.execute(f"PATHS = {paths!r}\n" + READ, _handler, 30)
        second = await repl.execute(f"import os\nSCRATCH = {scratch!r}\n" + WORKS, _handler, 30)
        mine = workdir / "mine.txt"
        on_host = mine.read_text() if mine.exists() else None  # written in the REPL's real workdir
    finally:
        await repl.close()
    seen = json.loads(first.stdout) if first.stdout.strip() else {}
    works = json.loads(second.stdout) if second.stdout.strip() else {}
    return {**seen, "works": works, "on_host": on_host, "final": second.final, "kind": plan.kind, "run_as": plan.run_as,
            "host_tmp_scratch": Path(scratch).exists(),
            "errors": [first.error, first.stderr[-2000:], second.error, second.stderr[-2000:]]}


if __name__ == "__main__":
    if os.environ.get("RLM_PROBE_SANDBOX") == "bwrap":  # as where unshare is missing or refused
        which = sandbox.shutil.which
        sandbox.shutil.which = lambda name: None if name == "unshare" else which(name)
    print(json.dumps(asyncio.run(probe(Path(sys.argv[1]), sys.argv[2:]))))
