"""The step protocol of the REPL's parent side: one step's ``exec`` sent, the child's sub-call
``request``s served while it runs, its ``done`` awaited; variables read back with ``get_var``.

Messages are JSON lines on the socket shared with the child (:mod:`rlm_cli.repl.channel` bounds and
parses them); the child's stdout and stderr go to anonymous files the parent reads after each step.
:class:`StepProtocol` is the half of :class:`~rlm_cli.repl.process.ReplProcess` that speaks it; the
other half (start, kill, restart, close) is the process's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.repl.channel import MAX_MESSAGE_BYTES, ProtocolError, parse_message, read_bounded

# Requests of one REPL served at once (each is bounded on its own; threads could send many): past it
# the parent stops reading the channel until one is answered.
MAX_PENDING_REQUESTS = 32

SubcallHandler = Callable[[str, dict], Awaitable[Any]]


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


def describe_exit(code: int | None, init: bool = False) -> str:
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


class StepProtocol:
    """Steps and variable reads over the child's socket (see the module doc). Mixed into
    :class:`~rlm_cli.repl.process.ReplProcess`, which provides the child (``proc``, ``_reader``,
    ``_writer``, ``_fds``: the capture files, ``capture_bytes``, ``sandbox``), the message ids
    (``_ids``), ``_fatal`` and the life-cycle calls used here (``kill``, ``restart``)."""

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
                error = (f"the REPL process {describe_exit(code, self.sandbox.pid_namespace)}; "
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
