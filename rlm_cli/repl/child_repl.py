"""The REPL child's protocol and namespace: the socket channel, ``context``/``files`` and the sub-call
functions, and the step loop. Standard library only (``child.py`` loads it by file path, after the
lockdown; see ``child.py`` for the protocol).
"""

from __future__ import annotations

import ast
import builtins
import collections
import contextlib
import fcntl
import io
import itertools
import json
import math
import os
import queue
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # one JSON line on the channel; the parent enforces the same bound


class MessageTooLarge(ValueError):
    """A request or result would exceed :data:`MAX_MESSAGE_BYTES` on the channel."""


PROTECTED = ("context", "files", "llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched",
             "FINAL", "Final", "FINAL_VAR", "SHOW_VARS", "grep", "search", "count", "definitions", "callers")

class FileMap(Mapping):
    """Read-only mapping ``path -> text`` over ``context``; each lookup slices ``context``."""

    def __init__(self, context: str, index: list) -> None:
        self._context = context
        self._spans = {path: (offset, offset + chars) for path, offset, chars in index}

    def __getitem__(self, path: str) -> str:
        start, end = self._spans[path]
        return self._context[start:end]

    def __iter__(self):
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __repr__(self) -> str:
        shown = [f"{p!r}: <{e - s:,} chars>" for p, (s, e) in itertools.islice(self._spans.items(), 50)]
        more = f", ... ({len(self._spans) - 50} more)" if len(self._spans) > 50 else ""
        return "{" + ", ".join(shown) + more + "}"


class Channel:
    """The child's end of the protocol socket: thread-safe sends, a reader thread routing replies."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._rfile = self._sock.makefile("rb")
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}
        self._pending_lock = threading.Lock()
        self.commands: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_loop, name="rlm-channel", daemon=True).start()

    def send(self, msg: dict) -> None:
        """Send one message. Raises :class:`MessageTooLarge` past :data:`MAX_MESSAGE_BYTES`."""
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"{msg.get('op') or msg.get('type')}: {len(data):,} bytes exceed the REPL "
                                  f"channel's limit of {MAX_MESSAGE_BYTES:,} bytes per message; send less at "
                                  "once (smaller prompts or contexts, or fewer per batch)")
        with self._send_lock:
            self._sock.sendall(data)

    def _read_loop(self) -> None:
        for line in self._rfile:
            msg = json.loads(line)
            if msg.get("type") == "result":
                with self._pending_lock:
                    slot = self._pending.pop(msg["id"], None)
                if slot is not None:
                    slot[1] = msg.get("value")
                    slot[0].set()
            else:
                self.commands.put(msg)
        self.commands.put(None)  # parent went away
        os._exit(0)

    def request(self, op: str, args: dict):
        """Send a request to the parent and block until its result arrives."""
        rid = next(self._ids)
        slot = [threading.Event(), None]
        with self._pending_lock:
            self._pending[rid] = slot
        try:
            self.send({"type": "request", "id": rid, "op": op, "args": args})
        except MessageTooLarge:
            with self._pending_lock:
                self._pending.pop(rid, None)
            raise
        slot[0].wait()
        return slot[1]


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _listed(value) -> list:
    """A batch's result list; the parent answers one error string for a batch refused whole (not a
    list, too long: see rlm_cli.run.subcalls.MAX_BATCH), raised here as ValueError."""
    if not isinstance(value, list):
        raise ValueError(_text(value))
    return value


PRELOADED = {"re": re, "json": json, "math": math, "itertools": itertools, "collections": collections}
"""Modules already imported in the namespace: weak root LMs use ``re.findall`` or
``itertools.combinations`` without the import (a 1.5B root split rlm's offered block and lost its
``import itertools``: NameError). Rebinding them is allowed; unchanged, they are not saved state."""


class Repl:
    """The namespace and the step executor."""

    def __init__(self, channel: Channel, context: str, index: list, make_tools: Callable | None = None) -> None:
        self.channel = channel
        self.final: str | None = None
        self.notes: list[str] = []
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins, **PRELOADED}
        files = FileMap(context, index)
        self.protected = {
            "context": context,
            "files": files,
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "rlm_query_batched": self.rlm_query_batched,
            "FINAL": self.FINAL,
            "Final": self.FINAL,  # small models write Final("...") in code: unambiguous, so it answers
            "FINAL_VAR": self.FINAL_VAR,
            "SHOW_VARS": self.SHOW_VARS,
        }
        if make_tools is not None:  # child_grep.make_tools: grep(pattern, ...), search(query, ...)
            self.protected.update(make_tools(context, files._spans))
        self.ns.update(self.protected)

    def unsaved(self) -> set[str]:
        """Names a saved state leaves out: rlm's own (``protected``) and the :data:`PRELOADED`
        modules still bound to themselves."""
        return set(self.protected) | {n for n, m in PRELOADED.items() if self.ns.get(n) is m}

    # --- functions the root LM calls -------------------------------------------------------
    def llm_query(self, prompt, model=None) -> str:
        """One sub-LM call: ``prompt`` (str) -> the sub-LM's reply (str); errors come back as text."""
        return _text(self.channel.request("llm_query", {"prompt": _text(prompt), "model": model}))

    def llm_query_batched(self, prompts, model=None) -> list:
        """Concurrent sub-LM calls; replies in input order; a failed element is an error string."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [_text(p) for p in prompts]
        if not prompts:
            return []
        return _listed(self.channel.request("llm_query_batched", {"prompts": prompts, "model": model}))

    def rlm_query(self, prompt, context=None) -> str:
        """A recursive RLM one level deeper, with its own REPL over ``context`` (default: a sub-LM
        call when the depth limit is reached)."""
        args = {"prompt": _text(prompt), "context": None if context is None else _text(context)}
        return _text(self.channel.request("rlm_query", args))

    def rlm_query_batched(self, prompts, contexts=None) -> list:
        """Several recursive RLMs run concurrently; replies in input order."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [_text(p) for p in prompts]
        if contexts is not None:
            contexts = [None if c is None else _text(c) for c in contexts]
            if len(contexts) != len(prompts):
                raise ValueError("rlm_query_batched: prompts and contexts differ in length")
        if not prompts:
            return []
        return _listed(self.channel.request("rlm_query_batched", {"prompts": prompts, "contexts": contexts}))

    def FINAL(self, answer) -> None:
        """End the run with ``answer`` (converted to str)."""
        self.final = _text(answer)
        print(f"[FINAL answer recorded: {len(self.final):,} chars]", file=sys.stderr)

    def FINAL_VAR(self, name) -> None:
        """End the run with the value of the variable named ``name`` (a value is taken as is)."""
        if isinstance(name, str) and name.strip() in self.ns:
            self.FINAL(self.ns[name.strip()])
        elif isinstance(name, str) and name.isidentifier():
            print(f"FINAL_VAR: no variable named {name!r}; nothing recorded. "
                  "Define it first, or call FINAL(value).", file=sys.stderr)
        else:
            self.FINAL(name)

    def SHOW_VARS(self) -> str:
        """Print and return the names and types of the variables defined so far."""
        rows = [f"{k}: {type(v).__name__}" for k, v in self.ns.items()
                if not k.startswith("_") and k not in self.protected and not isinstance(v, type(sys))]
        text = "\n".join(rows) if rows else "(no variables defined yet)"
        print(text)
        return text

    # --- running code ------------------------------------------------------------------------
    def run(self, code: str) -> str | None:
        """Run ``code``; print the repr of a trailing expression (as a notebook does).
        Returns a one-line error summary, or None."""
        try:
            tree = ast.parse(code, "<repl>", "exec")
        except SyntaxError as exc:
            with contextlib.suppress(Exception):  # stderr may be closed by now
                traceback.print_exception(type(exc), exc, None, file=sys.stderr)
            return f"SyntaxError: {exc.msg} (line {exc.lineno})"
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        try:
            exec(compile(tree, "<repl>", "exec"), self.ns)
            if last is not None:
                value = eval(compile(last, "<repl>", "eval"), self.ns)
                if value is not None:
                    print(repr(value))
        except (SystemExit, KeyboardInterrupt, Exception) as exc:  # the namespace survives
            tb = exc.__traceback__.tb_next if exc.__traceback__ else None
            with contextlib.suppress(Exception):  # the step may have closed fd 2
                traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        finally:
            self._restore_protected()
        return None

    def _restore_protected(self) -> None:
        for name, value in self.protected.items():
            if self.ns.get(name) is not value:
                self.ns[name] = value
                self.notes.append(f"`{name}` was reassigned by your code and has been restored; "
                                  "keep derived data in other variables.")



def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _restore_streams(saved: tuple[int, int], streams: tuple) -> None:
    """Put the captures back on fd 1 and 2 and the Python streams on them, whatever the last step
    closed, redirected or reassigned."""
    for fd, target in zip(saved, (1, 2), strict=True):
        with contextlib.suppress(OSError):
            os.dup2(fd, target)
    sys.stdout, sys.stderr = streams


def serve(args, notes: list, load_context: Callable[[str | int], tuple[str, str]],
          make_tools: Callable | None = None, state=None) -> None:
    """Load ``context`` (``load_context(fd) -> (text, method)``) and the index, say ready, then run
    the parent's commands until it goes away. ``args``: the parsed command line (``sock``, and
    ``context`` and ``index`` as inherited descriptors, closed once read; ``state_in``/``state_out``:
    descriptors of saved state to restore before ready, and of the file ``save_state`` writes);
    ``notes``: the lockdown's notes, sent with ``ready``; ``make_tools``: ``child_grep.make_tools``
    (None: no ``grep`` or ``search``); ``state``: the ``child_state`` module. Raises OSError or UnicodeDecodeError
    when the context or index cannot be read (the child then exits before ready).
    """
    # Python-level output goes straight to fd 1/2 (unbuffered) so it interleaves with fd writes and
    # survives a crash (segfault, os._exit) of the step that printed it. Private copies of fd 1/2
    # (close-on-exec, high numbers) put them back before each step if model code closed them.
    saved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 200) for fd in (1, 2))
    streams = tuple(io.TextIOWrapper(open(fd, "wb", buffering=0, closefd=False), encoding="utf-8",
                                     errors="backslashreplace", write_through=True) for fd in (1, 2))
    _restore_streams(saved, streams)
    sys.stdin = open(os.devnull)
    t0 = time.perf_counter()
    context, method = load_context(args.context)
    os.lseek(args.index, 0, os.SEEK_SET)
    with open(args.index, encoding="utf-8") as fh:  # closes the descriptor
        index = json.load(fh)
    os.close(args.context)
    channel = Channel(args.sock)
    repl = Repl(channel, context, index, make_tools)
    del context
    ready = {"type": "ready", "pid": os.getpid(), "load_s": time.perf_counter() - t0, "load": method,
             "notes": notes}
    if state is not None and getattr(args, "state_in", None) is not None:
        ready.update(state.restore(repl.ns, repl.protected, args.state_in))
    channel.send(ready)
    while True:
        msg = channel.commands.get()
        if msg is None:
            return
        if msg["type"] == "exec":
            _flush()
            _restore_streams(saved, streams)
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            repl.final, repl.notes = None, []
            error = repl.run(msg["code"])
            _flush()
            done = {"type": "done", "id": msg["id"], "error": error, "final": repl.final, "notes": repl.notes}
            try:
                channel.send(done)
            except MessageTooLarge as exc:
                channel.send({**done, "final": None, "notes": [], "error": f"FINAL: {exc}"})
        elif msg["type"] == "save_state":
            if state is None or getattr(args, "state_out", None) is None:
                report = {"saved": [], "skipped": [], "bytes": 0, "error": "no state file"}
            else:
                limit = msg.get("limit") if isinstance(msg.get("limit"), int) else 0
                report = state.save(repl.ns, repl.unsaved(), args.state_out, limit)
            channel.send({"type": "state_saved", "id": msg["id"], **report})
        elif msg["type"] == "get_var":
            name = msg.get("name", "")
            if name in repl.ns:
                try:
                    channel.send({"type": "var", "id": msg["id"], "value": _text(repl.ns[name]), "error": None})
                except MessageTooLarge as exc:
                    channel.send({"type": "var", "id": msg["id"], "value": None, "error": str(exc)})
            else:
                channel.send({"type": "var", "id": msg["id"], "value": None,
                              "error": f"no variable named {name!r}"})
