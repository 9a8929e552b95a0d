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


def _lockdown(workdir: str, host_mntns: str, root: str) -> list:
    """Give the child a filesystem of its own (``root``: JSON from ``visible.py``, see
    :func:`_new_root`), or, failing that or without ``root``, the host's made read-only except
    ``workdir``, with a private /dev. Then ``/proc/sys`` read-only and the cwd ``workdir``."""
    if not host_mntns or os.readlink("/proc/self/ns/mnt") == host_mntns:
        return ["not in a private mount namespace: the filesystem stays writable"]
    notes = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # never propagate anything to the host
    done = False
    if root:
        try:
            notes += _new_root(workdir, json.loads(root))
            done = True
        except (OSError, ValueError, TypeError) as exc:
            notes.append(f"could not give the REPL a filesystem of its own ({getattr(exc, 'strerror', None) or exc}); "
                         "it sees the host's, read-only")
    if not done:
        _mount(workdir, workdir, None, MS_BIND)
        notes += _read_only("", {workdir})
        try:
            _private_dev("")
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
    os.chdir(workdir)  # onto the writable bind mount
    return notes


def _read_only(under: str, keep: set) -> list:
    """Remount read-only every mount at or below ``under`` ("" for all) except the mount points in
    ``keep`` and those of /proc and /dev (below ``under``), keeping each mount's nosuid/nodev/noexec/
    atime flags (a user namespace may not change them). Returns notes on mounts that failed."""
    notes = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        mounts = [line.split() for line in fh]
    for fields in mounts:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        rel = point[len(under):] if under else point
        if point in keep or (under and not (point == under or point.startswith(under + "/"))):
            continue
        if rel.split("/")[1:2] in (["proc"], ["dev"]):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in fields[5].split(","):
            flags |= _MOUNT_FLAGS.get(opt, 0)
        try:
            _mount(None, point, None, flags)
        except OSError as exc:
            notes.append(f"could not make {rel or '/'} read-only: {exc.strerror}")
    return notes


def _new_root(workdir: str, spec: dict) -> list:
    """Build a new root on a tmpfs (staged over ``workdir``, whose own directory is kept through a
    descriptor) holding only: ``spec["links"]`` (``[path, target]`` symlinks), ``spec["read_only"]``
    (paths bound read-only at the same place), ``workdir`` (read-write), a fresh 64 MiB ``/tmp``, a
    private ``/dev`` and this PID namespace's ``/proc``; the root itself read-only. Then switch to it
    (``pivot_root``, the host's root detached; ``chroot`` where pivot_root is refused). Raises OSError
    before the switch with nothing left mounted; returns notes."""
    new = workdir
    keep = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    old_umask = os.umask(0o022)
    staged = False
    try:
        _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        staged = True
        os.mkdir(new + "/tmp")
        _mount("tmpfs", new + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
        os.mkdir(new + "/proc")
        _mount("/proc", new + "/proc", None, MS_BIND | MS_REC)
        _private_dev(new)
        for path, target in spec.get("links", []):
            os.makedirs(new + os.path.dirname(path), exist_ok=True)
            if not os.path.lexists(new + path):
                os.symlink(target, new + path)
        for path in [*spec.get("read_only", []), workdir]:
            src = f"/proc/self/fd/{keep}" if path == workdir else path
            if os.path.isdir(src):
                os.makedirs(new + path, exist_ok=True)
            else:
                os.makedirs(new + os.path.dirname(path), exist_ok=True)
                os.close(os.open(new + path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            # The workdir alone: recursively it would bring along the staging tmpfs stacked on it.
            _mount(src, new + path, None, MS_BIND if path == workdir else MS_BIND | MS_REC)
        notes = _read_only(new, {new + "/tmp", new + workdir})
        if notes:
            raise OSError(errno.EPERM, "; ".join(notes))
    except BaseException:
        if staged:
            ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(new), 2)  # MNT_DETACH
        raise
    finally:
        os.umask(old_umask)
        os.close(keep)
    return _switch_root(new)


_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "ppc64le": 203, "ppc64": 203,
               "s390x": 217, "i686": 217, "armv7l": 218}  # syscall numbers; glibc has no wrapper


def _switch_root(new: str) -> list:
    """Make ``new`` the root: ``pivot_root(".", ".")`` then detach the old root stacked on it (as
    pivot_root(2) describes), so nothing of the host's tree stays reachable; ``chroot`` where
    pivot_root is refused (the capabilities dropped afterwards keep the code from leaving it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    os.chdir(new)
    number = _PIVOT_ROOT.get(os.uname().machine)
    if number is not None and libc.syscall(ctypes.c_long(number), b".", b".") == 0:
        if libc.umount2(b".", 2) != 0:  # MNT_DETACH
            err = ctypes.get_errno()
            raise OSError(err, f"cannot detach the host's root: {os.strerror(err)}")
        os.chdir("/")
        return []
    os.chroot(".")
    os.chdir("/")
    return ["pivot_root was refused: the REPL's root is a chroot"]


_DEV_NODES = ("null", "zero", "full", "random", "urandom")


def _private_dev(root: str) -> None:
    """Cover ``root`` + /dev with a small tmpfs holding only the harmless nodes (:data:`_DEV_NODES`,
    bind-mounted from the host's through descriptors opened beforehand), the usual ``fd``/``std*``
    links and a private 64 MiB ``/dev/shm``: no disk, loop device, console or terminal of the host
    stays reachable. Raises OSError when /dev cannot be covered."""
    keep = {}
    dev = root + "/dev"
    for name in _DEV_NODES:
        with contextlib.suppress(OSError):
            keep[name] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(dev):
            os.mkdir(dev, 0o755)
        _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
        for name, fd in keep.items():
            os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            _mount(f"/proc/self/fd/{fd}", f"{dev}/{name}", None, MS_BIND)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{dev}/{name}")
        os.mkdir(f"{dev}/shm", 0o1777)
        _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
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


SIBLINGS = ("child_context", "child_grep", "child_code", "child_repl", "child_state")
"""The modules the REPL itself runs on (``child.py`` reads them by file path)."""
_SHELL = "/bin/sh"


def shell_init_planned(args) -> bool:
    """Whether PID 1 will become a shell init (:func:`_shell_init`), decided before the lockdown so
    that ``child.py`` reads the REPL's modules only where they are still readable afterwards: PID 1
    without ``--locked``, a task limit other than the watchdog (``RLIMIT_NPROC`` asked, or this process
    in the launch's ``pids`` cgroup), ``/bin/sh`` present and, with ``--run-as``, ``child.py`` and
    :data:`SIBLINGS` readable by others (the REPL is started again under that uid)."""
    if os.getpid() != 1 or not sys.platform.startswith("linux") or not os.access(_SHELL, os.X_OK):
        return False
    try:
        limits = json.loads(args.limits) if args.limits else {}
        if not limits.get("watchdog") or (not limits.get("tasks") and not _in_cgroup(limits.get("cgroup"))):
            return False
        if args.run_as:
            here = os.path.dirname(os.path.realpath(__file__))
            for name in ("child", *SIBLINGS):
                if not os.stat(os.path.join(here, name + ".py")).st_mode & 0o004:
                    return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


def lock_down(args, shell_init: bool = False) -> list[str]:
    """Lock the child down before any model code runs; returns notes on what could not be done.

    ``args``: the parsed command line (``lockdown``, ``host_mntns``, ``root``, ``limits``, ``sock``).
    Inside a private mount namespace (``--lockdown WORKDIR``) the child switches to a root of its own
    holding only what ``--root`` lists, WORKDIR (writable), a private ``/tmp``, ``/dev`` and
    ``/proc`` (``/proc/sys`` read-only); with ``--run-as UID`` the child becomes that unprivileged uid/gid (exits with status 70 if
    it cannot); every capability is dropped and no_new_privs set; the child dies with its parent;
    ``--limits`` (JSON; sizes in bytes, CPU in seconds) are applied with setrlimit.
    As PID 1, with ``shell_init`` (:func:`shell_init_planned`) and the task limit found in force, it
    becomes a shell init that starts the REPL afresh (never returns); otherwise it forks and the parent
    stays a Python init (with the process-count watchdog) and never returns. Failures become notes;
    raises only ``ValueError`` for malformed ``--limits`` JSON.
    """
    notes = []
    if sys.platform.startswith("linux"):
        try:
            if args.lockdown:
                notes += _lockdown(os.path.realpath(args.lockdown), args.host_mntns, args.root)
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
        if shell_init and not _watchdog_needed(limits):
            _shell_init(args, notes)  # returns only where the shell cannot be started
        main_pid = os.fork()
        if main_pid:
            _init(main_pid, args.sock, limits.get("watchdog"))
    return notes


def _watchdog_needed(limits: dict) -> bool:
    """Whether the process-count watchdog is the only task limit: not when ``RLIMIT_NPROC`` holds
    (``limits["tasks"]``, in force) or this process is in the ``pids`` cgroup made for the launch
    (``limits["cgroup"]``: its name, checked in ``/proc/self/cgroup``: a failed move counts as none)."""
    if not limits.get("watchdog"):
        return False
    tasks = limits.get("tasks")
    if tasks and hasattr(resource, "RLIMIT_NPROC"):
        with contextlib.suppress(OSError, ValueError):
            if 0 <= resource.getrlimit(resource.RLIMIT_NPROC)[0] <= tasks:
                return False
    return not _in_cgroup(limits.get("cgroup"))


def _in_cgroup(name: str | None) -> bool:
    """Whether this process is in the ``pids`` cgroup (v1) or unified cgroup (v2) called ``name``
    (``/proc/self/cgroup``; the launcher's move into it may have failed)."""
    if not name:
        return False
    with contextlib.suppress(OSError, ValueError), open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if os.path.basename(path) == name and ("pids" in controllers.split(",") or not controllers):
                return True
    return False


def _shell_init(args, notes: list) -> None:
    """Become a shell that runs the REPL as its only job: PID 1 of the namespace at about 1 MB where
    this interpreter, kept as init, costs ~11 MB. The shell (``/bin/sh``, locked down like this
    process: same root, uid, no capability, ``no_new_privs``, limits, death signal) waits for any
    child while its job runs, so orphans are reaped, and exits with the REPL's status (128 + signal
    number when a signal killed it). The REPL is started afresh (``child.py --locked NOTES``: no
    second lockdown) with its stderr; the shell's own (it names a killing signal) goes to /dev/null.
    Returns only when the shell cannot be started (the caller then stays init itself)."""
    sh = _SHELL
    passed = {args.sock, args.context, args.index, args.state_in, args.state_out}
    slot = next((fd for fd in range(9, 2, -1) if fd not in passed and not _is_open(fd)), None)
    here = os.path.dirname(os.path.realpath(__file__))
    script = os.path.join(here, "child.py")
    needed = [(sh, os.X_OK), (sys.executable, os.X_OK), (script, os.R_OK),
              *[(os.path.join(here, name + ".py"), os.R_OK) for name in SIBLINGS]]
    if slot is None or not all(os.access(path, mode) for path, mode in needed):  # as the uid it now has
        return
    worker = [sys.executable, "-I", script, "--sock", str(args.sock), "--context", str(args.context),
              "--index", str(args.index), "--limits", args.limits or "{}", "--locked", json.dumps(notes)]
    for flag, fd in (("--state-in", args.state_in), ("--state-out", args.state_out)):
        if fd is not None:
            worker += [flag, str(fd)]
    os.dup2(2, slot)
    try:
        null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        os.dup2(null, 2)
        os.close(null)
        sys.stdout.flush()
        # A subshell: its redirection is made in the forked child only, so the REPL gets its stderr
        # and the shell's own message about a killing signal goes to the shell's, /dev/null.
        os.execv(sh, [sh, "-c", f'(exec "$@") 2>&{slot} {slot}>&-; exit $?', "rlm-init", *worker])
    except OSError:
        os.dup2(slot, 2)
    os.close(slot)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
