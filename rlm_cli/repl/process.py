"""Parent side of the REPL: starts the child, runs steps, serves its sub-call requests.

One :class:`ReplProcess` per RLM instance. Steps run one at a time; while a step runs, the child's
requests (``llm_query`` and friends) are served concurrently by an async handler the engine gives.
A step that outlives its timeout, or a child that dies, is killed with its whole process group and
replaced by a fresh child with the context reloaded; the outcome says so (``restarted``), so the root
LM can be told its variables were lost.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.errors import ReplError
from rlm_cli.repl.cgroups import remove_cgroup
from rlm_cli.repl.channel import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    anonymous_file,
    open_regular,
    parse_message,
    read_bounded,
)
from rlm_cli.repl.launch import Child, in_thread, kill_tree, launch, release
from rlm_cli.repl.sandbox import SandboxPlan, announce, harden_parent, plan_sandbox

CHILD_SCRIPT = str(Path(__file__).with_name("child.py"))
DEFAULT_CAPTURE_BYTES = 256 * 1024  # of each stream kept per step, split between head and tail
START_TIMEOUT_S = 60.0
# Requests of one REPL served at once (each is bounded on its own; threads could send many): past it
# the parent stops reading the channel until one is answered.
MAX_PENDING_REQUESTS = 32

SubcallHandler = Callable[[str, dict], Awaitable[Any]]

_LIVE_GROUPS: set[int] = set()  # process groups of REPL children still alive (for last-resort cleanup)


def kill_all_now() -> None:
    """Synchronously SIGKILL every REPL process group still alive (used when exiting abruptly)."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        _LIVE_GROUPS.discard(pgid)


class FatalStepError(Exception):
    """Raised by a sub-call handler when the whole run must stop (e.g. a provider auth error).

    The step is killed and the original exception (``__cause__``) is re-raised by :meth:`execute`.
    """


@dataclass
class StepOutcome:
    """What one step did. ``stdout``/``stderr`` are bounded captures (see :func:`read_bounded`);
    ``error`` is a one-line summary when the step raised, timed out or killed the REPL;
    ``final`` is the answer recorded by ``FINAL``/``FINAL_VAR``; ``duration_s`` in seconds."""

    stdout: str
    stderr: str
    duration_s: float
    error: str | None = None
    final: str | None = None
    notes: list[str] = field(default_factory=list)
    restarted: bool = False


def _describe_exit(code: int | None, init: bool = False) -> str:
    """``init``: the code comes from the PID-namespace init, which reports a signal as 128 + signal."""
    if code is None:
        return "was lost"
    if init and 128 < code < 128 + 65:
        code = 128 - code
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class ReplProcess:
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

    # --- steps -------------------------------------------------------------------------------
    async def _send(self, msg: dict) -> None:
        assert self._writer is not None
        self._writer.write((json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass"))
        await self._writer.drain()

    async def _serve(self, msg: dict, handler: SubcallHandler) -> None:
        try:
            value = await handler(msg["op"], msg.get("args") or {})
        except FatalStepError as exc:
            self._fatal = exc.__cause__ or exc
            await self.kill()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            value = f"Error: {type(exc).__name__}: {exc}"
        with contextlib.suppress(ConnectionError, AssertionError, RuntimeError):
            await self._send({"type": "result", "id": msg["id"], "value": value})

    async def execute(self, code: str, handler: SubcallHandler, timeout_s: float | None) -> StepOutcome:
        """Run ``code`` in the child. ``timeout_s``: seconds before the step is killed (None: none).

        Re-raises the cause of a :class:`FatalStepError` from the handler; on cancellation the child
        is killed and the cancellation propagates. Never hangs on a dead child. A child that breaks
        the protocol (an oversized or malformed message) is killed and restarted, and the step fails.
        """
        if self.proc is None or self.proc.returncode is not None or self._writer is None:
            await self.restart()
        step_id = next(self._ids)
        t0 = time.monotonic()
        tasks: set[asyncio.Task] = set()
        done: dict | None = None
        error: str | None = None
        restarted = False
        try:
            await self._send({"type": "exec", "id": step_id, "code": code})
            async with asyncio.timeout(timeout_s):
                while True:
                    if len(tasks) >= MAX_PENDING_REQUESTS:  # backpressure: the child's senders wait
                        if await self._wait_any(tasks):
                            continue
                        break  # the child exited
                    line = await self._next_line()
                    if not line:
                        break
                    msg = parse_message(line)
                    if msg["type"] == "request":
                        task = asyncio.create_task(self._serve(msg, handler))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif msg["type"] == "done" and msg["id"] == step_id:
                        done = msg
                        break
        except TimeoutError:
            error = (f"step timed out after {timeout_s:g}s and was killed; the REPL was restarted and all "
                     "variables were lost (context and files are loaded again)")
        except ValueError as exc:  # ProtocolError, or a line past the reader's limit
            what = exc if isinstance(exc, ProtocolError) else f"a message over {MAX_MESSAGE_BYTES:,} bytes"
            error = (f"the REPL process sent {what} and was killed; it was restarted and all variables "
                     "were lost (context and files are loaded again)")
            await self.kill()
        except (ConnectionError, AssertionError):
            pass
        except asyncio.CancelledError:
            await self.kill()
            raise
        finally:
            for task in tasks:
                task.cancel()
        duration = time.monotonic() - t0
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal
        if done is None:
            if error is None:
                if self.proc is not None:  # let it exit by itself first, so its status tells what happened
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.proc.wait(), 2)
                await self.kill()
                code = self.proc.returncode if self.proc else None
                error = (f"the REPL process {_describe_exit(code, self.sandbox.pid_namespace)}; "
                         "it was restarted and all variables were lost (context and files are loaded again)")
            stdout, stderr = self._captured()
            await self.restart()
            restarted = True
            return StepOutcome(stdout, stderr, duration, error=error, restarted=restarted)
        stdout, stderr = self._captured()
        return StepOutcome(stdout, stderr, duration, error=done.get("error"), final=done.get("final"),
                           notes=list(done.get("notes") or []))

    async def _wait_any(self, tasks: set[asyncio.Task]) -> bool:
        """Wait until one of ``tasks`` is done (True) or the child exits (False)."""
        assert self.proc is not None
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait({*tasks, exited}, return_when=asyncio.FIRST_COMPLETED)
            return not exited.done()
        finally:
            if not exited.done():
                exited.cancel()
                await asyncio.gather(exited, return_exceptions=True)

    async def _next_line(self) -> bytes:
        """The child's next message line; b"" once the child has exited (even if descendants still
        hold the socket open) or the socket is closed. Raises ValueError past the size limit."""
        assert self._reader is not None and self.proc is not None
        read = asyncio.ensure_future(self._reader.readline())
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait({read, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():  # exited: take what it sent before dying, if anything
                await asyncio.wait({read}, timeout=0.5)
            return read.result() if read.done() else b""
        finally:
            pending = [task for task in (read, exited) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:  # a stream allows one reader: the cancelled readline must be finished first
                await asyncio.gather(*pending, return_exceptions=True)

    def _captured(self) -> tuple[str, str]:
        return (read_bounded(self._fds["stdout"], self.capture_bytes),
                read_bounded(self._fds["stderr"], self.capture_bytes))

    async def get_var(self, name: str, timeout_s: float = 30) -> str | None:
        """The value of variable ``name`` as text, or None if it does not exist, the REPL is gone or
        breaks the protocol. Raises TimeoutError after ``timeout_s`` seconds."""
        if self._writer is None:
            return None
        vid = next(self._ids)
        await self._send({"type": "get_var", "id": vid, "name": name})
        assert self._reader is not None
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    line = await self._reader.readline()
                    msg = parse_message(line) if line else None
                except ValueError:
                    await self.kill()
                    return None
                if msg is None:
                    return None
                if msg["type"] == "var" and msg["id"] == vid:
                    return msg.get("value")
