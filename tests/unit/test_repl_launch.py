"""The REPL child launched, signalled and reaped off the event loop (issue 24, point 4: ``rlm serve``
throughput). The launch (a fork that waits for the child's exec), the group kill and the clean-up run
in worker threads; a start cancelled in the middle of the launch leaves no child behind; the exit is
seen with and without a pidfd; a child already reaped is never signalled (its number could belong to
another process by then)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import pytest
from helpers import no_subcalls, tiny_context

from rlm_cli.repl import process
from rlm_cli.repl.launch import Child, launch
from rlm_cli.repl.process import ReplProcess

_noop = no_subcalls
_ctx = tiny_context


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _spawn(argv: list[str]) -> subprocess.Popen:
    return launch(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(), cwd="/",
                  env=dict(os.environ))


def test_launch_kill_and_clean_up_run_in_worker_threads(tmp_path, monkeypatch):
    where: dict[str, threading.Thread] = {}
    real_launch, real_signal, real_release = process.launch, Child.signal_group, process.release

    def spy_launch(*a, **k):
        where["launch"] = threading.current_thread()
        return real_launch(*a, **k)

    def spy_signal(self, sig):
        where["kill"] = threading.current_thread()
        return real_signal(self, sig)

    def spy_release(*a):
        where["release"] = threading.current_thread()
        return real_release(*a)

    monkeypatch.setattr(process, "launch", spy_launch)
    monkeypatch.setattr(Child, "signal_group", spy_signal)
    monkeypatch.setattr(process, "release", spy_release)
    ctx, index = _ctx(tmp_path)
    workdir = tmp_path / "repl" / "r0"

    async def main():
        loop_thread = threading.current_thread()
        repl = ReplProcess(ctx, index, workdir)
        await repl.start()
        out = await repl.execute("print(len(context))", _noop, 60)
        pid = repl.proc.pid
        await repl.close()
        return loop_thread, out, pid

    loop_thread, out, pid = asyncio.run(main())
    assert out.error is None and out.stdout.strip() == "20", out
    assert set(where) == {"launch", "kill", "release"}
    assert all(thread is not loop_thread for thread in where.values()), where
    assert not _alive(pid) and pid not in process._LIVE_GROUPS
    assert not workdir.exists()


def test_a_start_cancelled_during_the_launch_leaves_no_child(tmp_path, monkeypatch):
    entered, gate, launched = threading.Event(), threading.Event(), []
    real_launch = process.launch

    def slow_launch(*a, **k):
        entered.set()
        gate.wait(30)  # until the start has been cancelled
        popen = real_launch(*a, **k)
        launched.append(popen.pid)
        return popen

    monkeypatch.setattr(process, "launch", slow_launch)
    ctx, index = _ctx(tmp_path)
    workdir = tmp_path / "repl" / "r0"

    async def main():
        repl = ReplProcess(ctx, index, workdir)
        task = asyncio.ensure_future(repl.start())
        assert await asyncio.to_thread(entered.wait, 30)
        task.cancel()
        asyncio.get_running_loop().call_later(0.05, gate.set)  # the launch completes after the cancel
        with pytest.raises(asyncio.CancelledError):
            await task
        adopted = repl.proc.pid if repl.proc else None
        await repl.close()
        return adopted

    adopted = asyncio.run(main())
    assert launched and adopted == launched[0]  # the child launched after the cancel was not lost
    assert not _alive(adopted) and adopted not in process._LIVE_GROUPS
    assert not workdir.exists()


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "thread"])
def test_the_exit_is_seen_and_reaped(monkeypatch, pidfd):
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open here")

    async def main():
        exits = Child(await asyncio.to_thread(_spawn, [sys.executable, "-c", "raise SystemExit(3)"]))
        sleeper = Child(await asyncio.to_thread(_spawn, [sys.executable, "-c", "import time; time.sleep(60)"]))
        waiter = asyncio.ensure_future(sleeper.wait())
        await asyncio.sleep(0)
        waiter.cancel()  # one waiter cancelled: the others still hear of the exit
        assert sleeper.signal_group(signal.SIGKILL)
        return (await asyncio.wait_for(exits.wait(), 60), await asyncio.wait_for(sleeper.wait(), 60),
                sleeper.returncode, sleeper.pid)

    code, killed, returncode, pid = asyncio.run(main())
    assert code == 3 and killed == returncode == -signal.SIGKILL
    assert not _alive(pid)  # reaped: no zombie left


def test_a_reaped_child_is_never_signalled(monkeypatch):
    sent: list = []

    async def main():
        child = Child(await asyncio.to_thread(_spawn, [sys.executable, "-c", "pass"]))
        await asyncio.wait_for(child.wait(), 60)
        monkeypatch.setattr(os, "killpg", lambda *a: sent.append(("killpg", *a)))
        monkeypatch.setattr(os, "kill", lambda *a: sent.append(("kill", *a)))
        return child.signal_group(signal.SIGKILL)

    assert asyncio.run(main()) is False
    assert sent == []
