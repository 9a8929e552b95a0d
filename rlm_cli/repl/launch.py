"""The REPL child as an OS process: launched, signalled and reaped without blocking the event loop.

``asyncio.create_subprocess_exec`` forks on the event loop: ``_posixsubprocess.fork_exec`` returns
only once the child has exec'd (a few ms on a quiet machine, 100-200 ms on a loaded one, during which
every other request served by the loop waits), and asyncio's default child watcher then starts a
thread per child. Here the launch is a :class:`subprocess.Popen` made in a worker thread
(:func:`launch`, which releases the GIL while it waits for the exec); :class:`Child` watches the
exit on the loop through a pidfd (Linux 5.3+; elsewhere a thread waits for it) and reaps the child on
the loop. Signals to the child's process group (:meth:`Child.signal_group`, from any thread) and the
reaping take one lock, so a group is never signalled after its leader was reaped (its number could
then belong to a new process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from rlm_cli.repl.cgroups import remove_cgroup
from rlm_cli.repl.sandbox import remove_tree


def launch(cmd: list[str], *, stdout: int, stderr: int, pass_fds: tuple[int, ...], cwd: str,
           env: dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group, led by it), stdin from /dev/null,
    ``stdout``/``stderr`` to those descriptors, only ``pass_fds`` inherited. Blocking: call it in a
    worker thread. Raises OSError when the program cannot be started."""
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, pass_fds=pass_fds,
                            cwd=cwd, env=env, start_new_session=True)


class Child:
    """A child started by :func:`launch`, as the parts of ``asyncio.subprocess.Process`` the REPL
    uses: ``pid``, ``returncode`` (None while it runs or is not reaped yet, ``-N`` when killed by
    signal N) and ``await wait()``. Make it on the event loop that will wait for it."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future = self._loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux 5.3+: a thread waits for the exit instead
            threading.Thread(target=self._wait_in_thread, name=f"rlm-repl-wait-{self.pid}", daemon=True).start()
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int | None:
        """Wait until the child has exited and was reaped; its return code. Cancelling one waiter
        leaves the others waiting."""
        return await asyncio.shield(self._exited)

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group (to the child alone when the group is gone),
        unless the child was reaped already; whether it was sent. Safe from any thread."""
        with self._lock:
            if self._popen.returncode is not None:
                return False
            try:
                os.killpg(self.pid, sig)
            except OSError:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, sig)
            return True

    def _reap(self) -> None:
        """On the loop: reap the child if it has exited (the pidfd became readable)."""
        with self._lock:
            code = self._popen.poll()
        if code is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(code)

    def _wait_in_thread(self) -> None:
        try:  # wait for the exit without reaping: the reaping is done on the loop, under the lock
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except (AttributeError, OSError):
            with contextlib.suppress(OSError):
                self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._reap)


_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rlm-repl")
"""The REPLs' own worker threads: a launch waits for the child's exec (long on a loaded machine), so
it does not hold the loop's default executor, whose threads load each request's context."""


async def in_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in one of the REPLs' worker threads, finished even when the awaiting task is
    cancelled (the cancellation then propagates once it is done, so no half-done work is left behind)."""
    job = asyncio.get_running_loop().run_in_executor(_WORKERS, fn, *args)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        while not job.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({job})
        if not job.cancelled():
            job.exception()  # retrieved: the cancellation is what the caller hears
        raise


def _descendants(root: int, sig: signal.Signals) -> set[int]:
    """All descendants of ``root`` (Linux /proc; empty elsewhere), each sent ``sig`` as found."""
    found: set[int] = set()
    for _ in range(3):  # again, for what was forked meanwhile
        parents: dict[int, list[int]] = {}
        with contextlib.suppress(OSError):
            for name in os.listdir("/proc"):
                if name.isdigit():
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        with open(f"/proc/{name}/stat", "rb") as fh:
                            ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
                        parents.setdefault(ppid, []).append(int(name))
        todo, new = [root], 0
        while todo:
            for pid in parents.get(todo.pop(), []):
                if pid not in found:
                    found.add(pid)
                    new += 1
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
                todo.append(pid)
        if not new:
            break
    return found


def kill_tree(child: Child, pid_namespace: bool) -> None:
    """SIGKILL ``child``'s process group (blocking: a worker thread). Without a PID namespace,
    descendants that left the group (setsid) are found through /proc and stopped first, so they
    cannot fork away while being killed, then killed one by one."""
    if child.returncode is not None:
        return
    stray = set() if pid_namespace else _descendants(child.pid, signal.SIGSTOP)
    child.signal_group(signal.SIGKILL)
    for pid in stray:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def release(cgroup: str | None, fds: list[int], workdir: Path) -> None:
    """Remove a stopped child's cgroup, close the parent's descriptors, remove ``workdir`` (blocking:
    a worker thread)."""
    remove_cgroup(cgroup)
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    remove_tree(workdir)
