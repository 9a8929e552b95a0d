"""Parent side of the REPL: starts the child, runs steps, serves its sub-call requests.

One :class:`ReplProcess` per RLM instance. Steps run one at a time; while a step runs, the child's
requests (``llm_query`` and friends) are served concurrently by an async handler the engine gives.
A step that outlives its timeout, or a child that dies, is killed with its whole process group and
replaced by a fresh child with the context reloaded; the outcome says so (``restarted``), so the root
LM can be told its variables were lost. This module is the child's life (start, kill, restart,
close); the step protocol it speaks is :mod:`rlm_cli.repl.steps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from rlm_cli.errors import ReplError
from rlm_cli.repl.cgroups import remove_cgroup
from rlm_cli.repl.channel import (
    MAX_MESSAGE_BYTES,
    anonymous_file,
    open_regular,
    parse_message,
    read_bounded,
)
from rlm_cli.repl.launch import Child, in_thread, kill_tree, launch, release
from rlm_cli.repl.sandbox import SandboxPlan, announce, harden_parent, plan_sandbox
from rlm_cli.repl.steps import StepProtocol

CHILD_SCRIPT = str(Path(__file__).with_name("child.py"))
DEFAULT_CAPTURE_BYTES = 256 * 1024  # of each stream kept per step, split between head and tail
START_TIMEOUT_S = 60.0
_LIVE_GROUPS: set[int] = set()  # process groups of REPL children still alive (for last-resort cleanup)


def kill_all_now() -> None:
    """Synchronously SIGKILL every REPL process group still alive (used when exiting abruptly)."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        _LIVE_GROUPS.discard(pgid)


class ReplProcess(StepProtocol):
    """A persistent REPL child over one context file.

    ``context_path``: UTF-8 file holding ``context`` (opened once, as a regular file, and handed to
    each child as a descriptor); ``index``: ``[[path, offset, chars], ...]`` for ``files``;
    ``workdir``: a private directory (the child's cwd, HOME and TMPDIR), removed by :meth:`close`;
    ``sandbox``: how to launch the child (default: :func:`plan_sandbox` for ``workdir`` and
    ``network``, limits sized from the context, planned by the first :meth:`start` in a worker
    thread). The child's output goes to anonymous files only the parent holds (see
    :mod:`rlm_cli.repl.channel`). Raises :class:`ReplError` when the child cannot be started.
    """

    def __init__(self, context_path: Path, index: list, workdir: Path,
                 capture_bytes: int = DEFAULT_CAPTURE_BYTES, sandbox: SandboxPlan | None = None,
                 state_in: bytes | None = None, keep_state: bool = False, network: bool = False) -> None:
        self.context_path = Path(context_path)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.index = index
        self.capture_bytes = capture_bytes
        # None until the first start plans it (in a worker thread) for ``workdir`` and ``network``
        self.sandbox: SandboxPlan = sandbox  # type: ignore[assignment]
        self._network = network
        self.proc: Child | None = None
        self._launched: subprocess.Popen | None = None  # launched by _launch, not yet adopted
        self.load_s: float | None = None
        self.load_method: str | None = None  # how the child built ``context``: "in place" or "read"
        self.restarts = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._fatal: BaseException | None = None
        self._cgroup: str | None = None
        self._fds: dict[str, int] = {}  # context, index, stdout, stderr: the parent's own descriptors
        # Saved REPL state (rlm_cli.repl.state): restored by the first child only; ``keep_state`` gives
        # each child a file to save into. ``restore_report``: {"restored": [...], "unrestored": [[n, why]]}.
        self._state_in, self.keep_state = state_in, keep_state
        self.restore_report: dict | None = None

    def _open_files(self) -> None:
        """Open, once, the files every child inherits: context, index and the two captures."""
        if self._fds:
            return
        try:
            self._fds["context"] = open_regular(self.context_path)
            self._fds["index"] = anonymous_file(json.dumps(self.index).encode("utf-8", "surrogatepass"),
                                                append=False)
            self._fds["stdout"] = anonymous_file()
            self._fds["stderr"] = anonymous_file()
            if self._state_in is not None:
                self._fds["state_in"] = anonymous_file(self._state_in, append=False)
                self._state_in = None
            if self.keep_state:
                self._fds["state_out"] = anonymous_file(append=False)
        except OSError as exc:
            self._close_files()
            raise ReplError(f"cannot prepare the REPL's files: {exc}") from exc
        self.sandbox.prepare_workdir(str(self.workdir))

    def _close_files(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}

    # --- lifecycle ---------------------------------------------------------------------------
    def _launch(self, child_sock: socket.socket) -> list[str]:
        """The blocking part of :meth:`start` (a worker thread): open the files, make the launch's
        cgroup, launch the sandboxed child with ``child_sock`` (closed here) as its channel; the child
        is left in ``self._launched`` for :meth:`_adopt`. Returns the child's argv (before the
        sandbox's prefix). Raises ReplError."""
        try:
            harden_parent()
            if self.sandbox is None:
                self.sandbox = plan_sandbox(str(self.workdir.resolve()), self._network)
            self._open_files()
            for name in ("stdout", "stderr"):
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fds[name], 0)
            size = os.fstat(self._fds["context"]).st_size
            workdir = str(self.workdir.resolve())
            state_fds = {name: self._fds[name] for name in ("state_in", "state_out") if name in self._fds}
            self._cgroup = self.sandbox.new_cgroup(None, size)
            argv = [sys.executable, "-I", CHILD_SCRIPT, "--sock", str(child_sock.fileno()),
                    "--context", str(self._fds["context"]), "--index", str(self._fds["index"]),
                    *[arg for name, fd in state_fds.items() for arg in ("--" + name.replace("_", "-"), str(fd))],
                    *self.sandbox.child_args(workdir, str(self.context_path.resolve()), size, self._cgroup)]
            popen = launch(self.sandbox.command(argv, self._cgroup), stdout=self._fds["stdout"],
                           stderr=self._fds["stderr"],
                           pass_fds=(child_sock.fileno(), self._fds["context"], self._fds["index"],
                                     *state_fds.values()),
                           cwd=str(self.workdir), env=self.sandbox.env)
            _LIVE_GROUPS.add(popen.pid)
            self._launched = popen
            return argv
        except OSError as exc:
            remove_cgroup(self._cgroup)
            self._cgroup = None
            raise ReplError(f"cannot start the REPL process: {exc}") from exc
        finally:
            child_sock.close()
            with contextlib.suppress(KeyError, OSError):  # restored once: a restarted child starts empty
                os.close(self._fds.pop("state_in"))

    def _adopt(self) -> None:
        """On the loop, after :meth:`_launch` (even when its caller was cancelled): watch the child
        it launched, so :meth:`kill` and :meth:`close` end it."""
        popen, self._launched = self._launched, None
        if popen is not None:
            self.proc = Child(popen)

    async def start(self) -> None:
        """Start the child and wait until the context is loaded in it. The files, the sandbox's
        arguments and the launch itself are prepared in a worker thread, off the event loop."""
        parent_sock, child_sock = socket.socketpair()
        try:
            argv = await in_thread(self._launch, child_sock)
        except BaseException:
            parent_sock.close()
            raise
        finally:
            self._adopt()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent_sock,
                                                                        limit=MAX_MESSAGE_BYTES + 1)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await self._reader.readline()
            ready = parse_message(line) if line else None
        except (TimeoutError, ValueError):
            ready = None
        if ready is None or ready.get("type") != "ready":
            await self.kill()
            if "--state-in" in argv:  # the saved variables broke the start (hostile bytes): start without them
                await self.start()
                self.restore_report = {"restored": [], "unrestored": [
                    ["*", "the REPL did not start with the saved variables, so it started without them"]]}
                return
            detail = read_bounded(self._fds["stderr"], 2000).strip().splitlines()
            raise ReplError("the REPL process failed to start" + (f": {detail[-1]}" if detail else ""))
        load_s = ready.get("load_s")
        self.load_s = float(load_s) if isinstance(load_s, int | float) else None
        self.load_method = ready.get("load") if isinstance(ready.get("load"), str) else None
        if "restored" in ready:
            from rlm_cli.repl.state import restore_report

            self.restore_report = restore_report(ready)
        notes = ready.get("notes")
        for note in notes if isinstance(notes, list) else []:
            announce(f"REPL sandbox: {str(note)[:500]}", self.sandbox)

    async def kill(self) -> None:
        """Kill the child and its whole process group; safe to call twice."""
        cgroup = await self._stop()
        if cgroup:
            await in_thread(remove_cgroup, cgroup)

    async def _stop(self) -> str | None:
        """Kill the child's process group (the signals sent from a worker thread) and wait until it is
        reaped (10 s at most); the launch's cgroup, left for the caller to remove (None: none)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            # Killed before its channel closes: on EOF the child exits by itself, and without a PID
            # namespace its setsid descendants would then be orphans the /proc scan cannot trace.
            await in_thread(kill_tree, proc, self.sandbox.pid_namespace)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if proc is None:
            return None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)
        _LIVE_GROUPS.discard(proc.pid)
        cgroup, self._cgroup = self._cgroup, None
        return cgroup

    async def restart(self) -> None:
        """Kill the child and start a fresh one (all variables are lost)."""
        await self.kill()
        self.restarts += 1
        await self.start()

    async def close(self) -> None:
        """Stop the child for good, close the parent's descriptors and remove its working directory
        (read-only leftovers included): the clean-up in one worker thread (closing the capture files
        frees their pages), finished even when the caller is cancelled."""
        cgroup = None
        try:
            cgroup = await self._stop()
        finally:  # cancelled while waiting for the exit: the child was killed, the rest is cleaned up
            self.proc = None
            cgroup, self._cgroup = cgroup or self._cgroup, None
            fds, self._fds = list(self._fds.values()), {}
            await in_thread(release, cgroup, fds, self._removed_on_close())

    def _removed_on_close(self) -> Path:
        """The directory :meth:`close` removes: the working directory."""
        return self.workdir

