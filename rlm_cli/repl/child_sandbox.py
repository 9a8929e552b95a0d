"""The REPL child's lockdown, applied to itself before any model code. Standard library only
(``child.py`` loads it by file path); Linux via ctypes, every step degrades to a note.

See ``sandbox.py`` (the plan the parent makes) and ``docs/sandbox.md``. As PID 1 of a fresh PID
namespace the child forks, and the parent side stays a small init (:func:`_init`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import signal
import sys

try:
    import resource
except ImportError:  # pragma: no cover - not a Unix
    resource = object()

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
    try:
        _private_dev()
    except OSError as exc:
        notes.append(f"could not make a private /dev: {exc.strerror}")
        with contextlib.suppress(OSError):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for path in ("/proc/sys", "/proc/sysrq-trigger"):  # the host's kernel settings: never writable
        if not os.path.exists(path):
            continue
        try:
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as exc:
            notes.append(f"could not make {path} read-only: {exc.strerror}")
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


_DEV_NODES = ("null", "zero", "full", "random", "urandom")


def _private_dev() -> None:
    """Cover the host's /dev with a small tmpfs holding only the harmless nodes (:data:`_DEV_NODES`,
    bind-mounted from the host's through descriptors opened beforehand), the usual ``fd``/``std*``
    links and a private 64 MiB ``/dev/shm``: no disk, loop device, console or terminal of the host
    stays reachable. Raises OSError when /dev cannot be covered."""
    keep = {}
    for name in _DEV_NODES:
        with contextlib.suppress(OSError):
            keep[name] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
    try:
        _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
        for name, fd in keep.items():
            os.close(os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"/dev/{name}")
        os.mkdir("/dev/shm", 0o1777)
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    finally:
        for fd in keep.values():
            os.close(fd)


def _drop_privileges() -> None:
    """Drop every capability (bounding, ambient, effective, permitted, inheritable); no_new_privs."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        if libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:  # PR_CAPBSET_DROP
            break
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())  # _LINUX_CAPABILITY_VERSION_3
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS


def _run_as(uid: int) -> None:
    """Become ``uid`` (and gid ``uid``, no supplementary groups) for good: real, effective and saved
    ids. Raises OSError when that fails; the caller then refuses to run model code."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise OSError(errno.EPERM, f"still running as uid {os.geteuid()}")


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``; set after any uid
    change, which clears it); exit at once if the parent is already gone."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:
        os._exit(1)


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


def lock_down(args) -> list[str]:
    """Lock the child down before any model code runs; returns notes on what could not be done.

    ``args``: the parsed command line (``lockdown``, ``host_mntns``, ``hide``, ``limits``, ``sock``).
    Inside a private mount namespace (``--lockdown WORKDIR``) the filesystem becomes read-only except
    WORKDIR, ``/dev`` becomes a private one and ``/proc/sys`` read-only, and ``--hide`` paths are
    covered; with ``--run-as UID`` the child becomes that unprivileged uid/gid (exits with status 70 if
    it cannot); every capability is dropped and no_new_privs set; the child dies with its parent;
    ``--limits`` (JSON; sizes in bytes, CPU in seconds) are applied with setrlimit.
    As PID 1 it forks: the parent stays init and never returns. Failures become notes; raises only
    ``ValueError`` for malformed ``--limits`` JSON.
    """
    notes = []
    if sys.platform.startswith("linux"):
        try:
            if args.lockdown:
                notes += _lockdown(os.path.realpath(args.lockdown), args.host_mntns, args.hide)
        except Exception as exc:
            notes.append(f"filesystem lockdown failed: {exc}")
        if args.run_as:
            try:
                _run_as(int(args.run_as))
            except (OSError, ValueError) as exc:
                print(f"rlm sandbox: cannot switch to uid {args.run_as}: {exc}; refusing to run as root",
                      file=sys.stderr)
                raise SystemExit(70) from None
        try:
            _drop_privileges()
        except Exception as exc:
            notes.append(f"could not drop privileges: {exc}")
        with contextlib.suppress(Exception):
            _die_with_parent()
    limits = json.loads(args.limits) if args.limits else {}
    notes += _apply_limits(limits)
    if os.getpid() == 1:
        main_pid = os.fork()
        if main_pid:
            _init(main_pid, args.sock, limits.get("watchdog"))
    return notes
