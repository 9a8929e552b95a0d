"""The trust boundary around the REPL through the real CLI (issue #10, classes 1, 3, 8).

Each test is an attack on the rlm process itself through the real CLI and the scripted server: REPL
code swapping the files the parent used to open by path (and reading the parent's environment back),
``--log`` at a device or FIFO, the ways a run ends (SIGHUP, SIGTERM, SIGKILL of rlm). The attacks on
the engine's side of the boundary (root over the host, forged and oversized channel messages, a step
closing its fds) are tested in process in tests/unit/test_repl_boundary.py.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from helpers import last_trajectory, repl_pids, source_file, wait_until
from scripted_server import Reply

LINUX = sys.platform.startswith("linux")
KEY = "sk-trust-boundary-secret-0123456789abcdef"




def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _feedback(server) -> list[str]:
    """The last user message of each root request: the output of the previous step."""
    return [r.body["messages"][-1]["content"] for r in server.requests_for("root")]




def _busy(pids: list[int], ticks: int = 20) -> bool:
    """Whether one of ``pids`` has used at least ``ticks`` clock ticks of CPU (0.2 s at 100 Hz)."""
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[11]) + int(fields[12]) >= ticks:  # utime + stime
            return True
    return False


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
def test_swapped_capture_files_never_redirect_the_parent(cli, scripted_server, tmp_path):
    s = scripted_server
    canary = tmp_path / "bashrc"
    canary.write_text("original\n")
    s.script("root", _repl(SWAP.format(canary=str(canary))),
             _repl("print('after restart', 'some data' in context, sorted(files))"),
             _repl("print('SECOND STEP OUTPUT ' * 3)"), "FINAL(done)")
    home = tmp_path / "home"
    proc = cli("ask", source_file(tmp_path), "q?", timeout=90, TMPDIR=str(tmp_path), OPENAI_API_KEY=KEY)
    assert proc.returncode == 0, proc.stderr
    assert canary.read_text() == "original\n"  # nothing was written through a swapped link
    fb = _feedback(s)
    assert "restarted" in fb[1]
    assert "after restart True" in fb[2] and "input.txt" in fb[2]  # context and files came back intact
    assert "SECOND STEP OUTPUT" in fb[3]
    everything = json.dumps([r.body for r in s.requests]) + json.dumps(last_trajectory(home))
    assert KEY not in everything and "OPENAI_API_KEY" not in everything  # no environ read back


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
def test_log_at_a_device_fifo_or_directory_is_refused(cli, scripted_server, tmp_path, kind):
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    node = _node(tmp_path, kind)
    mode_before = os.lstat(node).st_mode
    s = scripted_server
    s.script("root", "FINAL(done)")
    proc = cli("ask", source_file(tmp_path), "q?", "--log", str(node), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--log" in lines[0] and "Traceback" not in proc.stderr
    assert os.lstat(node).st_mode == mode_before  # still the device / FIFO / directory it was
    assert not s.requests  # refused before any LM call


# --- class 8: endings ----------------------------------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="Linux")
@pytest.mark.parametrize("sig,code", [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_sighup_and_sigterm_end_cleanly(cli, scripted_server, tmp_path, sig, code):
    s = scripted_server
    s.default("sub", Reply(text="slow", delay_s=30))
    s.script("root", _repl("r = llm_query('q')"), "FINAL(x)")
    home = tmp_path / "home"
    proc = cli.popen("ask", source_file(tmp_path), "q?", "--json", TMPDIR=str(tmp_path))
    assert wait_until(lambda: len(s.requests_for("sub")) >= 1), "the sub-call never started"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert json.loads(out)["status"] == "interrupted"
    doc = last_trajectory(home)
    assert doc["status"] == "interrupted" and doc["ended_at"]
    assert not list(tmp_path.glob("rlm-run-*")), "the run's temporary copy of the input was left behind"
    assert wait_until(lambda: not repl_pids(tmp_path), 15), "a REPL process outlived rlm"


@pytest.mark.skipif(not LINUX, reason="Linux")
def test_repl_stuck_in_c_code_dies_with_a_killed_rlm(cli, scripted_server, tmp_path):
    s = scripted_server
    # Catastrophic backtracking: the regex engine holds the GIL, so no Python-level watcher can run.
    s.script("root", _repl("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"), "FINAL(x)")
    proc = cli.popen("ask", source_file(tmp_path), "q?", "-q", TMPDIR=str(tmp_path))
    try:
        assert wait_until(lambda: len(s.requests_for("root")) >= 1 and repl_pids(tmp_path)), "no REPL"
        assert wait_until(lambda: _busy(repl_pids(tmp_path))), "the step never ran"  # stuck in the regex now
    finally:
        proc.kill()
        proc.wait(10)
    assert wait_until(lambda: not repl_pids(tmp_path), 20), "a REPL process outlived rlm killed with SIGKILL"
