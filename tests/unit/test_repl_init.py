"""PID 1 of the REPL's namespace: a shell init (about 1 MB) where a pids cgroup or RLIMIT_NPROC holds
the task limit, the Python init with its process-count watchdog where nothing else does. Either way
the init holds no capability, reaps orphans and reports how the REPL ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_repl_sandbox import run_steps

from rlm_cli.repl import sandbox
from rlm_cli.repl.process import CHILD_SCRIPT
from rlm_cli.repl.sandbox import ResourceLimits, plan_sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")

INIT_PROBE = r"""
import os, signal, time
status = dict(line.split(':', 1) for line in open('/proc/1/status').read().splitlines() if ':' in line)
print('NAME', status['Name'].strip())
print('CAPS', [status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')])
print('NNP', status['NoNewPrivs'].strip(), 'UID', status['Uid'].split()[0], os.getuid())
print('CMD', open('/proc/1/cmdline', 'rb').read().split(b'\0')[:3])
os.kill(1, signal.SIGKILL)  # ignored: PID 1 of the namespace, from inside it
if os.fork() == 0:           # an orphan: its parent exits first, it is reparented to PID 1, then exits
    if os.fork() == 0:
        time.sleep(0.3)
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(1.5)
states = {p: open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] for p in os.listdir('/proc') if p.isdigit()}
print('PROCS', sorted(states.items()))
"""


def _shell_init_expected(plan) -> bool:
    return plan.kind == "unshare" and (bool(plan.cgroup_parent) or (plan.user_namespace and os.geteuid() != 0))


def _init_of(stdout: str) -> str:
    return stdout.split("NAME ", 1)[1].split()[0]


def test_the_shell_init_is_locked_down_reaps_orphans_and_reports_the_end(tmp_path):
    plan = plan_sandbox(str(tmp_path / "repl" / "r0"))
    if not _shell_init_expected(plan):
        pytest.skip("no pids cgroup and no RLIMIT_NPROC here: the Python init is used (tested below)")
    outs = run_steps(tmp_path, [INIT_PROBE, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
                                "import os\nos._exit(7)", "print('fine')"], plan=plan)
    out = outs[0].stdout
    assert outs[0].error is None, outs[0].stderr
    assert _init_of(out) in ("sh", "dash", "bash", "ash", "busybox"), out
    assert "CAPS ['0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', " \
           "'0000000000000000']" in out, out  # the init gained nothing back when it became a shell
    nnp, uid = out.split("NNP ", 1)[1].split()[0], out.split("UID ", 1)[1].split()
    assert nnp == "1" and uid[0] == uid[1], out
    procs = out.split("PROCS ", 1)[1]
    assert "'Z'" not in procs and procs.count("(") == 2, procs  # the orphan was reaped: only init and REPL
    assert outs[1].restarted and "killed by SIGSEGV" in outs[1].error, outs[1]
    assert "Segmentation fault" not in outs[1].stderr  # the shell's own message goes nowhere
    assert "exited with status 7" in outs[2].error and outs[3].stdout == "fine\n"


def test_without_another_task_limit_the_python_init_and_its_watchdog_stay(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "cgroup_parent", lambda: None)
    plan = plan_sandbox(str(tmp_path / "repl" / "r0"),
                        limits=ResourceLimits(max_tasks=24, cpu_seconds=100))
    if plan.kind != "unshare":
        pytest.skip("no PID namespace through unshare here")
    storm = ("import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n        time.sleep(30)\n"
             "        os._exit(0)\ntime.sleep(5)\nprint('survived')")
    outs = run_steps(tmp_path, [INIT_PROBE, storm], plan=plan, timeout=20)
    if plan.user_namespace and os.geteuid() != 0:  # RLIMIT_NPROC holds the limit: the shell init
        assert _init_of(outs[0].stdout) != "python3"
        assert "survived" not in outs[1].stdout
        return
    assert "child.py" in outs[0].stdout.split("CMD ", 1)[1], outs[0].stdout  # PID 1 is still Python
    assert "all of them were killed" in outs[1].stderr and outs[1].restarted, outs[1]


def test_a_failed_move_into_the_cgroup_keeps_the_watchdog(monkeypatch, tmp_path):
    plan = plan_sandbox(str(tmp_path / "repl" / "r0"), limits=ResourceLimits(max_tasks=24, cpu_seconds=100))
    if plan.kind != "unshare" or not plan.cgroup_parent or (plan.user_namespace and os.geteuid() != 0):
        pytest.skip("needs unshare, a writable pids cgroup and no RLIMIT_NPROC (root)")
    command = plan.command
    monkeypatch.setattr(plan, "command", lambda argv, cgroup: command(argv, None))  # the move "fails"
    outs = run_steps(tmp_path, [INIT_PROBE], plan=plan)
    assert "child.py" in outs[0].stdout.split("CMD ", 1)[1], outs[0].stdout  # not trusted by its name


def test_locked_is_refused_from_anything_but_the_init(tmp_path):
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        res = subprocess.run([sys.executable, "-I", CHILD_SCRIPT, "--sock", str(null), "--context", str(null),
                              "--index", str(null), "--locked", "[]"], pass_fds=(null,), capture_output=True,
                             text=True, timeout=30, cwd=tmp_path)
    finally:
        os.close(null)
    assert res.returncode == 2 and "--locked is for a REPL started by the namespace's init" in res.stderr
    assert Path(CHILD_SCRIPT).exists()
