"""The REPL child process. Standard library only; run as ``python -I child.py --sock FD ...``.

Protocol: newline-delimited JSON on a private socket (the inherited fd ``--sock``), never on fd 1/2,
so code that prints, writes to fd 1 directly, or starts threads and subprocesses cannot corrupt it.
fd 1 and fd 2 are files in the REPL's working directory (set up by the parent); each step truncates
them first, and the parent reads what the step wrote (bounded) once it is done.

parent -> child: ``{"type": "exec", "id", "code"}``, ``{"type": "get_var", "id", "name"}``,
                 ``{"type": "result", "id", "value"}`` (the answer to one of the child's requests)
child -> parent: ``{"type": "ready", "pid", "load_s"}``,
                 ``{"type": "request", "id", "op", "args"}`` (op: llm_query, llm_query_batched,
                 rlm_query, rlm_query_batched),
                 ``{"type": "done", "id", "error", "final", "notes"}``, ``{"type": "var", "id", "value", "error"}``

The namespace holds ``context`` (str), ``files`` (read-only mapping path -> text, slicing ``context``
on access so the text is held once), the sub-call functions, ``FINAL``, ``FINAL_VAR`` and
``SHOW_VARS``. It persists across steps.

Sandbox (``sandbox.py``, ``docs/sandbox.md``): before any model code the child locks itself down
(:func:`_sandbox`). As PID 1 of a fresh PID namespace it forks and stays a small init (:func:`_init`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import errno
import io
import itertools
import json
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping

try:
    import resource
except ImportError:  # pragma: no cover - not a Unix
    resource = object()

PROTECTED = ("context", "files", "llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched",
             "FINAL", "FINAL_VAR", "SHOW_VARS")


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
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
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
        self.send({"type": "request", "id": rid, "op": op, "args": args})
        slot[0].wait()
        return slot[1]


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


class Repl:
    """The namespace and the step executor."""

    def __init__(self, channel: Channel, context: str, index: list) -> None:
        self.channel = channel
        self.final: str | None = None
        self.notes: list[str] = []
        self.ns: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.protected = {
            "context": context,
            "files": FileMap(context, index),
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "rlm_query_batched": self.rlm_query_batched,
            "FINAL": self.FINAL,
            "FINAL_VAR": self.FINAL_VAR,
            "SHOW_VARS": self.SHOW_VARS,
        }
        self.ns.update(self.protected)

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
        return list(self.channel.request("llm_query_batched", {"prompts": prompts, "model": model}))

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
        return list(self.channel.request("rlm_query_batched", {"prompts": prompts, "contexts": contexts}))

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


# --- sandbox setup (Linux via ctypes; every step degrades to a note) ----------------------------
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
                "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = [None if v is None else os.fsencode(v) for v in (src, target, fstype, data)]
    if ctypes.CDLL(None, use_errno=True).mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _lockdown(workdir: str, host_mntns: str, hide: list) -> list:
    """Read-only filesystem except ``workdir`` and a private /dev/shm; ``hide`` paths covered."""
    if not host_mntns or os.readlink("/proc/self/ns/mnt") == host_mntns:
        return ["not in a private mount namespace: the filesystem stays writable"]
    notes = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # never propagate anything to the host
    _mount(workdir, workdir, None, MS_BIND)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        mounts = [line.split() for line in fh]
    for fields in mounts:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == workdir or point.split("/")[1] in ("proc", "dev"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in fields[5].split(","):
            flags |= _MOUNT_FLAGS.get(opt, 0)
        try:
            _mount(None, point, None, flags)
        except OSError as exc:
            notes.append(f"could not make {point} read-only: {exc.strerror}")
    with contextlib.suppress(OSError):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for path in hide:
        try:
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0")
            else:
                _mount("/dev/null", path, None, MS_BIND)
        except OSError as exc:
            notes.append(f"could not hide {path}: {exc.strerror}")
    os.chdir(workdir)  # onto the writable bind mount
    return notes


def _drop_privileges() -> None:
    """Drop every capability (bounding, ambient, effective, permitted, inheritable); no_new_privs."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        if libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:  # PR_CAPBSET_DROP
            break
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())  # _LINUX_CAPABILITY_VERSION_3
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS


def _apply_limits(limits: dict) -> list:
    """setrlimit for each limit given; the CPU hard limit (SIGKILL) is 5 s past the soft one (SIGXCPU)."""
    notes = []
    for key, name, extra in (("as", "RLIMIT_AS", 0), ("cpu", "RLIMIT_CPU", 5), ("tasks", "RLIMIT_NPROC", 0),
                             ("fsize", "RLIMIT_FSIZE", 0)):
        value = limits.get(key)
        if not value or not hasattr(resource, name):
            continue
        res = getattr(resource, name)
        try:
            hard = resource.getrlimit(res)[1]
            new_hard = value + extra if hard == resource.RLIM_INFINITY else min(value + extra, hard)
            resource.setrlimit(res, (min(value, new_hard), new_hard))
        except (ValueError, OSError) as exc:
            notes.append(f"could not set {name}: {exc}")
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails (EFBIG), no kill
    return notes


def _init(main_pid: int, sock_fd: int, watchdog: int | None) -> None:
    """PID 1 of the REPL's PID namespace: reap, watch the process count, exit with the REPL's status."""
    os.close(sock_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        signal.sigtimedwait({signal.SIGCHLD}, 0.05)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == main_pid:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
        if watchdog and sum(name.isdigit() for name in os.listdir("/proc")) > watchdog:
            with contextlib.suppress(OSError):
                os.write(2, f"\n[rlm sandbox: more than {watchdog} processes in the REPL; all of them were "
                            "killed]\n".encode())
            os.kill(-1, signal.SIGKILL)  # every process of the namespace but this one


def _sandbox(args) -> list:
    """Lock the child down before any model code runs; returns notes on what could not be done.

    Inside a private mount namespace (``--lockdown WORKDIR``) the filesystem becomes read-only except
    WORKDIR and a private /dev/shm, and ``--hide`` paths are covered; every capability is dropped and
    no_new_privs set; ``--limits`` are applied with setrlimit. As PID 1 it forks: the parent stays init.
    """
    notes = []
    if sys.platform.startswith("linux"):
        try:
            if args.lockdown:
                notes += _lockdown(os.path.realpath(args.lockdown), args.host_mntns, args.hide)
        except Exception as exc:
            notes.append(f"filesystem lockdown failed: {exc}")
        try:
            _drop_privileges()
        except Exception as exc:
            notes.append(f"could not drop privileges: {exc}")
    limits = json.loads(args.limits) if args.limits else {}
    notes += _apply_limits(limits)
    if os.getpid() == 1:
        main_pid = os.fork()
        if main_pid:
            _init(main_pid, args.sock, limits.get("watchdog"))
    return notes


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sock", type=int, required=True)
    ap.add_argument("--context", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--limits", default="")
    ap.add_argument("--lockdown", default="")
    ap.add_argument("--host-mntns", default="")
    ap.add_argument("--hide", action="append", default=[])
    args = ap.parse_args()
    notes = _sandbox(args)
    # Python-level output goes straight to fd 1/2 (unbuffered) so it interleaves with fd writes and
    # survives a crash (segfault, os._exit) of the step that printed it.
    sys.stdout, sys.stderr = (io.TextIOWrapper(open(fd, "wb", buffering=0, closefd=False), encoding="utf-8",
                                               errors="backslashreplace", write_through=True) for fd in (1, 2))
    sys.stdin = open(os.devnull)
    t0 = time.perf_counter()
    with open(args.context, encoding="utf-8", newline="") as fh:
        context = fh.read()
    with open(args.index, encoding="utf-8") as fh:
        index = json.load(fh)
    channel = Channel(args.sock)
    repl = Repl(channel, context, index)
    del context
    channel.send({"type": "ready", "pid": os.getpid(), "load_s": time.perf_counter() - t0, "notes": notes})
    while True:
        msg = channel.commands.get()
        if msg is None:
            return
        if msg["type"] == "exec":
            _flush()
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            repl.final, repl.notes = None, []
            error = repl.run(msg["code"])
            _flush()
            channel.send({"type": "done", "id": msg["id"], "error": error, "final": repl.final,
                          "notes": repl.notes})
        elif msg["type"] == "get_var":
            name = msg.get("name", "")
            if name in repl.ns:
                channel.send({"type": "var", "id": msg["id"], "value": _text(repl.ns[name]), "error": None})
            else:
                channel.send({"type": "var", "id": msg["id"], "value": None,
                              "error": f"no variable named {name!r}"})


if __name__ == "__main__":
    main()
