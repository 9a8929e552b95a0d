"""The trust boundary around the REPL (issue #10, classes 1, 2, 3, 7, 8 and the fd part of 10).

Each test is an attack through the real CLI and the scripted server: REPL code swapping the files the
parent used to open by path, root privileges over the host, ``--log`` at a device or FIFO, forged and
oversized channel messages, the ways a run ends (SIGHUP, SIGTERM, SIGKILL of rlm), and a step that
closes its own stdout and stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import RLM, last_trajectory, repl_pids, rlm_env, run_rlm, source_file
from scripted_server import Reply

from rlm_cli.context import ContextWriter
from rlm_cli.repl.sandbox import plan_sandbox

LINUX = sys.platform.startswith("linux")
KEY = "sk-trust-boundary-secret-0123456789abcdef"




def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _feedback(server) -> list[str]:
    """The last user message of each root request: the output of the previous step."""
    return [r.body["messages"][-1]["content"] for r in server.requests_for("root")]




def _wait_for(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- class 1: files the parent opens where the REPL can write ---------------------------------------
SWAP = r"""
import os
canary = {canary!r}
names = ['.rlm-stdout', '.rlm-stderr', '.rlm-index.json', 'context.txt', '../context.txt',
         '../_contexts', '../../context.txt']
for name in names:
    for target in (canary, '/proc/self/environ'):
        try:
            if os.path.lexists(name):
                os.unlink(name)
            os.symlink(target, name)
        except OSError as exc:
            print('could not swap', name, type(exc).__name__)
os.mkfifo('fifo-out')
print('swapped')
os.kill(os.getpid(), 9)  # force a restart: the parent sets the REPL up again
"""


@pytest.mark.skipif(not LINUX, reason="Linux")
def test_swapped_capture_files_never_redirect_the_parent(scripted_server, tmp_path):
    s = scripted_server
    canary = tmp_path / "bashrc"
    canary.write_text("original\n")
    s.script("root", _repl(SWAP.format(canary=str(canary))),
             _repl("print('after restart', 'some data' in context, sorted(files))"),
             _repl("print('SECOND STEP OUTPUT ' * 3)"), "FINAL(done)")
    home = tmp_path / "home"
    proc = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home, TMPDIR=str(tmp_path), OPENAI_API_KEY=KEY),
                   timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert canary.read_text() == "original\n"  # nothing was written through a swapped link
    fb = _feedback(s)
    assert "restarted" in fb[1]
    assert "after restart True" in fb[2] and "input.txt" in fb[2]  # context and files came back intact
    assert "SECOND STEP OUTPUT" in fb[3]
    everything = json.dumps([r.body for r in s.requests]) + json.dumps(last_trajectory(home))
    assert KEY not in everything and "OPENAI_API_KEY" not in everything  # no environ read back


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


# --- class 2: running as root ---------------------------------------------------------------------
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
def test_repl_run_as_root_cannot_touch_host_kernel_settings(scripted_server, tmp_path):
    if plan_sandbox(str(tmp_path)).kind == "none":
        pytest.skip("no namespaces on this machine")
    s = scripted_server
    before = (Path("/proc/sys/kernel/domainname").read_text(), socket.gethostname())
    s.script("root", _repl(ROOT_ATTACK), "FINAL(done)")
    proc = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home", TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    out = _feedback(s)[1]
    assert (Path("/proc/sys/kernel/domainname").read_text(), socket.gethostname()) == before
    assert "WROTE domainname" not in out and "domainname refused" in out
    if "hostname in the REPL is now" in out:  # only ever inside the REPL's own UTS namespace
        assert socket.gethostname() != "pwned-by-repl"
    dev = out.split("dev ", 1)[1]
    for node in ("vda", "sda", "loop0", "console", "tty1", "kmsg", "mem"):
        assert f"'{node}'" not in dev  # no disk, console or terminal of the host


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


# --- class 3: --log at a device or FIFO -----------------------------------------------------------
def _node(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"log-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_log_at_a_device_fifo_or_directory_is_refused(scripted_server, tmp_path, kind):
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    node = _node(tmp_path, kind)
    mode_before = os.lstat(node).st_mode
    s = scripted_server
    s.script("root", "FINAL(done)")
    proc = run_rlm(["ask", source_file(tmp_path), "q?", "--log", str(node)], rlm_env(s, tmp_path / "home"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--log" in lines[0] and "Traceback" not in proc.stderr
    assert os.lstat(node).st_mode == mode_before  # still the device / FIFO / directory it was
    assert not s.requests  # refused before any LM call


def test_trajectory_write_never_renames_over_a_device(tmp_path):
    from rlm_cli.trajectory.recorder import atomic_write_text

    fifo = tmp_path / "became-a-fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        atomic_write_text(fifo, "{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["became-a-fifo"]  # no temporary file left


# --- class 7: the channel is untrusted input ------------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
def test_oversized_request_is_an_error_to_the_code(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", _repl("try:\n    llm_query('x' * (65 << 20))\nexcept Exception as exc:\n"
                           "    print('refused:', type(exc).__name__, str(exc)[:200])"), "FINAL(done)")
    proc = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    out = _feedback(s)[1]
    assert "refused: MessageTooLarge" in out and "67,108,864" in out
    assert not s.requests_for("sub")


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
def test_forged_channel_messages_kill_the_repl(scripted_server, tmp_path, payload, expect):
    s = scripted_server
    s.script("root", _repl(FORGE.format(payload=payload)), _repl("print('alive', 'some data' in context)"), "FINAL(done)")
    t0 = time.monotonic()
    proc = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"), timeout=90)
    assert proc.returncode == 0, proc.stderr
    fb = _feedback(s)
    assert expect in fb[1] and "restarted" in fb[1]
    assert "alive True" in fb[2]
    assert not s.requests_for("sub")  # nothing forged was served
    assert time.monotonic() - t0 < 60  # hang detector: the 30 s sleep was cut short by the kill


# --- class 8: endings ----------------------------------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
@pytest.mark.parametrize("sig,code", [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_sighup_and_sigterm_end_cleanly(scripted_server, tmp_path, sig, code):
    s = scripted_server
    s.default("sub", Reply(text="slow", delay_s=30))
    s.script("root", _repl("r = llm_query('q')"), "FINAL(x)")
    home = tmp_path / "home"
    proc = subprocess.Popen([RLM, "ask", source_file(tmp_path), "q?", "--json"],
                            env=rlm_env(s, home, TMPDIR=str(tmp_path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert _wait_for(lambda: len(s.requests_for("sub")) >= 1), "the sub-call never started"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert json.loads(out)["status"] == "interrupted"
    doc = last_trajectory(home)
    assert doc["status"] == "interrupted" and doc["ended_at"]
    assert not list(tmp_path.glob("rlm-run-*")), "the run's temporary copy of the input was left behind"
    assert _wait_for(lambda: not repl_pids(tmp_path), 15), "a REPL process outlived rlm"


@pytest.mark.skipif(not LINUX, reason="Linux")
def test_repl_stuck_in_c_code_dies_with_a_killed_rlm(scripted_server, tmp_path):
    s = scripted_server
    # Catastrophic backtracking: the regex engine holds the GIL, so no Python-level watcher can run.
    s.script("root", _repl("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"), "FINAL(x)")
    proc = subprocess.Popen([RLM, "ask", source_file(tmp_path), "q?", "-q"], env=rlm_env(s, tmp_path / "home",
                                                                                TMPDIR=str(tmp_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: len(s.requests_for("root")) >= 1 and repl_pids(tmp_path)), "no REPL"
        time.sleep(0.5)  # the step is running
    finally:
        proc.kill()
        proc.wait(10)
    assert _wait_for(lambda: not repl_pids(tmp_path), 20), "a REPL process outlived rlm killed with SIGKILL"


# --- class 10: a step that closes fds 1 and 2 -----------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
def test_step_closing_stdout_and_stderr_does_not_break_the_next(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", _repl("import os, sys\nos.close(1)\nos.close(2)\nsys.stdout = None"),
             _repl("print('still here')\nraise ValueError('and errors still show')"), "FINAL(done)")
    proc = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    fb = _feedback(s)
    assert "still here" in fb[2] and "and errors still show" in fb[2]
    assert "restarted" not in fb[2]


@pytest.mark.skipif(not LINUX, reason="Linux")
def test_requests_served_at_once_per_repl_are_bounded(tmp_path):
    """REPL threads can send many requests at once; the parent serves at most MAX_PENDING_REQUESTS of
    them and stops reading the channel until one is answered (backpressure, bounded memory)."""
    import asyncio

    from rlm_cli.repl.process import MAX_PENDING_REQUESTS, ReplProcess

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
