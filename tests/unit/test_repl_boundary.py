"""The trust boundary around the REPL, in process (issue #10, classes 1, 2, 3, 7 and the fd part of
10): root privileges over the host, oversized and forged channel messages and requests served at once,
a step that closes its own stdout and stderr (runs of the engine against the FakeLM); the context
file and the trajectory never written through a link or into a FIFO. The attacks that need the CLI
process itself (swapped files and its environment, --log targets, signals, a killed rlm) stay in
tests/e2e/test_trust_repl.py."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest
from engine_runner import run_engine

from rlm_cli.context import ContextWriter
from rlm_cli.repl.sandbox import plan_sandbox

LINUX = sys.platform.startswith("linux")


def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _feedback(lm) -> list[str]:
    """The last user message of each root request: the output of the previous step."""
    return [r.body["messages"][-1]["content"] for r in lm.requests_for("root")]


ROOT_ATTACK = r"""
import os, socket
print('uid', os.getuid())
try:
    with open('/proc/sys/kernel/domainname', 'w') as fh:
        fh.write('pwned-by-repl')
    print('WROTE domainname')
except OSError as exc:
    print('domainname refused', type(exc).__name__)
try:
    socket.sethostname('pwned-by-repl')
    print('hostname in the REPL is now', socket.gethostname())
except OSError as exc:
    print('hostname refused', type(exc).__name__)
print('dev', sorted(os.listdir('/dev')))
"""


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="Linux, as root")
def test_repl_run_as_root_cannot_touch_host_kernel_settings(fake_lm, tmp_path):
    if plan_sandbox(str(tmp_path)).kind == "none":
        pytest.skip("no namespaces on this machine")
    before = (Path("/proc/sys/kernel/domainname").read_text(), socket.gethostname())
    fake_lm.script("root", _repl(ROOT_ATTACK), "FINAL(done)")
    assert run_engine(fake_lm).status == "answered"
    out = _feedback(fake_lm)[1]
    assert (Path("/proc/sys/kernel/domainname").read_text(), socket.gethostname()) == before
    assert "WROTE domainname" not in out and "domainname refused" in out
    if "hostname in the REPL is now" in out:  # only ever inside the REPL's own UTS namespace
        assert socket.gethostname() != "pwned-by-repl"
    dev = out.split("dev ", 1)[1]
    for node in ("vda", "sda", "loop0", "console", "tty1", "kmsg", "mem"):
        assert f"'{node}'" not in dev  # no disk, console or terminal of the host


# --- class 7: the channel is untrusted input ------------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
def test_oversized_request_is_an_error_to_the_code(fake_lm):
    fake_lm.script("root", _repl("try:\n    llm_query('x' * (65 << 20))\nexcept Exception as exc:\n"
                                 "    print('refused:', type(exc).__name__, str(exc)[:200])"), "FINAL(done)")
    assert run_engine(fake_lm).status == "answered"
    out = _feedback(fake_lm)[1]
    assert "refused: MessageTooLarge" in out and "67,108,864" in out
    assert not fake_lm.requests_for("sub")


FORGE = r"""
sock = llm_query.__self__.channel._sock
sock.sendall({payload})
import time
time.sleep(30)
"""


@pytest.mark.skipif(not LINUX, reason="Linux")
@pytest.mark.parametrize("payload,expect", [
    ("b'{\"type\": \"request\", \"id\": 1, \"op\": \"llm_query\", \"args\": {\"prompt\": \"' + b'x' * (70 << 20)",
     "over 67,108,864 bytes"),
    ("b'[1, 2, 3]\\n'", "not a JSON object"),
    ("b'{\"type\": \"request\", \"id\": 7, \"op\": \"os.system\", \"args\": {}}\\n'", "unknown op"),
    ("b'{\"type\": \"done\", \"id\": 1, \"final\": 42}\\n'", "malformed step result"),
])
def test_forged_channel_messages_kill_the_repl(fake_lm, payload, expect):
    fake_lm.script("root", _repl(FORGE.format(payload=payload)), _repl("print('alive', 'some data' in context)"),
                   "FINAL(done)")
    run = run_engine(fake_lm)
    assert run.status == "answered"
    fb = _feedback(fake_lm)
    # Killed and restarted (a step left to its 30 s sleep would have ended normally, with no restart).
    assert expect in fb[1] and "restarted" in fb[1]
    assert run.doc["iterations"][0]["steps"][0]["repl_restarted"] is True
    assert "alive True" in fb[2]
    assert not fake_lm.requests_for("sub")  # nothing forged was served


# --- class 10: a step that closes fds 1 and 2 -----------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
def test_step_closing_stdout_and_stderr_does_not_break_the_next(fake_lm):
    fake_lm.script("root", _repl("import os, sys\nos.close(1)\nos.close(2)\nsys.stdout = None"),
                   _repl("print('still here')\nraise ValueError('and errors still show')"), "FINAL(done)")
    assert run_engine(fake_lm).status == "answered"
    fb = _feedback(fake_lm)
    assert "still here" in fb[2] and "and errors still show" in fb[2]
    assert "restarted" not in fb[2]


# --- files, privileges and the channel without a run ------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
def test_context_writer_never_follows_a_link_or_blocks_on_a_fifo(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    link = tmp_path / "ctx-link.txt"
    link.symlink_to(target)
    with pytest.raises(OSError):
        ContextWriter(link)
    assert target.read_text() == "keep me\n"
    fifo = tmp_path / "ctx-fifo.txt"
    os.mkfifo(fifo)
    outcome: list = []

    def attempt() -> None:
        try:
            ContextWriter(fifo)
            outcome.append("opened")
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert isinstance(outcome[0], OSError)
    fresh = tmp_path / "ctx.txt"
    ContextWriter(fresh).finish()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # a copy of the input: the user's eyes only


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="Linux, as root")
def test_run_as_makes_the_process_unprivileged():
    from rlm_cli.repl import child_sandbox

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            child_sandbox._run_as(65534)
            try:
                open("/proc/sys/kernel/domainname", "w").close()
                code = 3
            except PermissionError:
                code = 0 if os.getresuid() == (65534,) * 3 and os.getgroups() == [] else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_trajectory_write_never_renames_over_a_device(tmp_path):
    from rlm_cli.trajectory.recorder import atomic_write_text

    fifo = tmp_path / "became-a-fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        atomic_write_text(fifo, "{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["became-a-fifo"]  # no temporary file left


@pytest.mark.skipif(not LINUX, reason="Linux")
def test_requests_served_at_once_per_repl_are_bounded(tmp_path):
    """REPL threads can send many requests at once; the parent serves at most MAX_PENDING_REQUESTS of
    them and stops reading the channel until one is answered (backpressure, bounded memory)."""
    import asyncio

    from rlm_cli.repl.process import ReplProcess
    from rlm_cli.repl.steps import MAX_PENDING_REQUESTS

    ctx = tmp_path / "context.txt"
    ctx.write_text("hello\n")
    live = peak = 0

    async def handler(op, args):
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.05)
        live -= 1
        return "ok"

    code = ("import threading\nout = []\nts = [threading.Thread(target=lambda: out.append(llm_query('q'))) "
            "for _ in range(120)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint(len(out), set(out))")

    async def main():
        repl = ReplProcess(ctx, [["a.txt", 0, 6]], tmp_path / "repl" / "r0")
        await repl.start()
        try:
            return await repl.execute(code, handler, 60)
        finally:
            await repl.close()

    outcome = asyncio.run(main())
    assert outcome.error is None, outcome.stderr
    assert "120 {'ok'}" in outcome.stdout
    assert 1 < peak <= MAX_PENDING_REQUESTS
