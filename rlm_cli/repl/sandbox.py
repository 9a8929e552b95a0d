"""How the REPL child is launched: its environment, namespaces, resource limits and cleanup.

The root LM's code runs in a child process (``child.py``) that must not see secrets and must not take
the machine down. What this module arranges (details and fallbacks: ``docs/sandbox.md``):

- an allowlisted environment (never a provider key, token or password);
- on Linux with ``unshare`` (util-linux): fresh user (where permitted), PID, mount and network
  namespaces with a new ``/proc``, so other processes (and their ``/proc/<pid>/environ``) are
  invisible and the network is off unless asked for; inside, ``child.py`` switches to a root of its
  own that holds only what ``visible.py`` allows (the Python it runs, system libraries, its working
  directory, a private ``/tmp``: no home, no ``/var``, no rlm data) and drops every capability
  before any model code runs. Where ``unshare`` cannot, bubblewrap (``bwrap``) does the same if
  installed;
- resource limits the child applies to itself (:class:`ResourceLimits`), plus a ``pids`` cgroup
  where one is writable (root ignores ``RLIMIT_NPROC``);
- :func:`remove_tree` for the private working directory, read-only files included.

Whatever is weaker than asked is said once per process through :attr:`SandboxPlan.notices`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rlm_cli.repl.cgroups import cgroup_parent, make_cgroup
from rlm_cli.repl.visible import VisibleRoot, visible_root, workdir_links
from rlm_cli.secrets import is_secret_name

_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYTHONHASHSEED")
GIB = 1 << 30
MIB = 1 << 20
UNPRIVILEGED_UID = 65534  # "nobody": the REPL's uid when rlm runs as root outside a user namespace
_ANNOUNCED: set[str] = set()  # notices already given by this process
_PROBES: dict[tuple[str, ...], bool] = {}


def child_environment(workdir: str) -> dict[str, str]:
    """The REPL child's environment: an allowlist, never anything that looks like a secret.

    ``HOME`` and ``TMPDIR`` point at ``workdir``; ``MALLOC_ARENA_MAX=2`` keeps glibc's per-thread
    arenas from eating the address-space limit. Platform-independent.
    """
    env = {k: v for k, v in os.environ.items() if k in _ALLOWED and not is_secret_name(k)}
    env.update({"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONIOENCODING": "utf-8", "MALLOC_ARENA_MAX": "2"})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


@dataclass
class ResourceLimits:
    """Limits one REPL applies to itself at startup, before any model code (``None``: no limit).

    ``address_space_bytes``: RLIMIT_AS per process (Linux; not enforced on macOS).
    ``cpu_seconds``: RLIMIT_CPU per process, over the REPL's whole life (SIGKILL 5 s past it).
    ``max_tasks``: processes plus threads: a ``pids`` cgroup where writable, else RLIMIT_NPROC inside a
    user namespace for non-root users, and a process-count watchdog inside a PID namespace.
    ``file_size_bytes``: RLIMIT_FSIZE, so captured output and written files stay bounded (writes past
    it fail with EFBIG; SIGXFSZ is ignored).
    """

    address_space_bytes: int | None = 2 * GIB
    cpu_seconds: int | None = 3600
    max_tasks: int | None = 256
    file_size_bytes: int | None = 256 * MIB

    def as_args(self) -> dict:
        """The limits as the JSON object ``child.py --limits`` takes."""
        return {"as": self.address_space_bytes, "cpu": self.cpu_seconds, "tasks": self.max_tasks,
                "fsize": self.file_size_bytes}


def _env_int(name: str, scale: int = 1) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(float(value) * scale)
    except ValueError:
        return None
    return number if number > 0 else None


def default_limits(context_bytes: int = 0) -> ResourceLimits:
    """Limits sized from the input: address space ``max(2 GiB, 4 x context_bytes + 1 GiB)``, CPU one
    hour, 256 tasks, files ``max(256 MiB, 2 x context_bytes)``.

    Overridable through the environment: ``RLM_REPL_MAX_MEMORY_MB``, ``RLM_REPL_MAX_CPU_S``,
    ``RLM_REPL_MAX_PROCS``, ``RLM_REPL_MAX_FILE_MB``.
    """
    lim = ResourceLimits(address_space_bytes=max(2 * GIB, 4 * context_bytes + GIB),
                         file_size_bytes=max(256 * MIB, 2 * context_bytes))
    lim.address_space_bytes = _env_int("RLM_REPL_MAX_MEMORY_MB", MIB) or lim.address_space_bytes
    lim.cpu_seconds = _env_int("RLM_REPL_MAX_CPU_S") or lim.cpu_seconds
    lim.max_tasks = _env_int("RLM_REPL_MAX_PROCS") or lim.max_tasks
    lim.file_size_bytes = _env_int("RLM_REPL_MAX_FILE_MB", MIB) or lim.file_size_bytes
    return lim


@dataclass
class SandboxPlan:
    """How to launch one REPL child.

    ``prefix``: the command before the interpreter (``unshare ...``, ``bwrap ...`` or empty); ``kind``:
    ``"unshare"``, ``"bwrap"`` or ``"none"``; ``env``: the child's
    whole environment; ``notices``: what is weaker than asked, for the user (given once per process);
    ``limits``: explicit limits, or None to size them from the context at launch; ``pid_namespace``,
    ``mount_namespace``, ``network_off``: what the prefix provides; ``cgroup_parent``: a writable
    ``pids`` cgroup directory under which each launch gets its own cgroup (None: none);
    ``root``: what the REPL sees of the filesystem besides its workdir (``visible.py``; used with a
    mount namespace); ``run_as``: the unprivileged uid
    (and gid) the child switches to after its lockdown (rlm running as root outside a user namespace),
    None to keep the uid (an ordinary user, or root mapped in a user namespace with every capability
    dropped); ``pdeathsig_prefix``: a command that makes the launched process die with rlm (``setpriv
    --pdeathsig KILL``), so a REPL never outlives an rlm killed with SIGKILL.
    """

    prefix: list[str] = field(default_factory=list)
    kind: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    limits: ResourceLimits | None = None
    pid_namespace: bool = False
    mount_namespace: bool = False
    network_off: bool = False
    user_namespace: bool = False
    cgroup_parent: str | None = None
    root: VisibleRoot = field(default_factory=VisibleRoot)
    run_as: int | None = None
    pdeathsig_prefix: list[str] = field(default_factory=list)

    def child_args(self, workdir: str, context_path: str, context_bytes: int, cgroup: str | None = None) -> list[str]:
        """Extra ``child.py`` arguments: the limits (JSON) and, in a mount namespace, the lockdown
        (``context_path`` is not made visible: the child gets ``context`` as a descriptor).
        ``cgroup``: the launch's ``pids`` cgroup (:meth:`new_cgroup`), named to the child, which keeps
        the process-count watchdog only when neither that cgroup nor ``RLIMIT_NPROC`` holds it."""
        limits = self.limits or default_limits(context_bytes)
        args = limits.as_args()
        # RLIMIT_NPROC counts per user: only meaningful in a fresh user namespace, and never for root.
        if not (self.user_namespace and os.geteuid() != 0):
            args["tasks"] = None
        args["watchdog"] = limits.max_tasks if self.kind == "unshare" else None  # the child is PID 1
        args["cgroup"] = os.path.basename(cgroup) if cgroup else None
        out = ["--limits", json.dumps(args)]
        if self.run_as is not None:
            out += ["--run-as", str(self.run_as)]
        if self.kind == "unshare":  # bwrap does the same itself
            out += ["--lockdown", workdir, "--host-mntns", _mnt_ns_id(), "--root", self._root_json(workdir)]
        return out

    def _root_json(self, workdir: str) -> str:
        """The ``--root`` argument: the read-only paths and the links, those on the way to ``workdir``
        included."""
        _real, links = workdir_links(workdir)
        return json.dumps({"read_only": self.root.read_only, "links": [*self.root.links, *links]})

    def new_cgroup(self, limits: ResourceLimits | None, context_bytes: int) -> str | None:
        """Create a fresh ``pids`` cgroup for one launch (None when unavailable)."""
        lim = limits or self.limits or default_limits(context_bytes)
        if not self.cgroup_parent or not lim.max_tasks:
            return None
        return make_cgroup(self.cgroup_parent, lim.max_tasks)

    def prepare_workdir(self, workdir: str) -> None:
        """Give the working directory to :attr:`run_as` (mode 0700), so the unprivileged child can
        write there; a no-op otherwise. Raises OSError when it cannot."""
        if self.run_as is not None:
            os.chown(workdir, self.run_as, self.run_as, follow_symlinks=False)
            os.chmod(workdir, stat.S_IRWXU, follow_symlinks=False)

    def command(self, argv: list[str], cgroup: str | None) -> list[str]:
        """The full command line: ``argv`` behind the prefix, entering ``cgroup`` first if given."""
        cmd = [*self.pdeathsig_prefix, *self.prefix, *argv]
        if cgroup:
            # The shell moves itself into the cgroup, then becomes the sandbox: no fork escapes it.
            cmd = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" 2>/dev/null; exec "$@"', cgroup, *cmd]
        return cmd


def _mnt_ns_id() -> str:
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return ""


def _probe(cmd: list[str]) -> bool:
    """Whether ``cmd`` (a namespace prefix) can start a program: it runs ``true`` behind it, a process
    of 1 MB and 1 ms where a Python start-up would cost ~8 MB and 20-40 ms of CPU on every run (the
    REPL itself then starts behind the prefix that worked, and says so if it cannot). Memoised."""
    key = tuple(cmd)
    if key not in _PROBES:
        try:
            res = subprocess.run([*cmd, shutil.which("true") or "/bin/true"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15,
                                 env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            _PROBES[key] = res.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _PROBES[key] = False
    return _PROBES[key]


def _namespace_prefix(network: bool, root_can_drop: bool) -> tuple[list[str], str, bool, bool]:
    """(prefix, kind, user namespace used, network namespace used); ``[], "none"`` when none works.
    ``root_can_drop``: rlm runs as root and the child can run as :data:`UNPRIVILEGED_UID`, so a
    namespace set without a user namespace comes first (a user namespace mapping root keeps the host's
    uid 0). A bwrap prefix still lacks the per-directory arguments (see :func:`_bwrap_prefix`)."""
    if not sys.platform.startswith("linux"):
        return [], "none", False, False
    nets = [False] if network else [True, False]
    unshare = _which("unshare")
    if unshare:
        base = ["--pid", "--fork", "--kill-child", "--mount-proc", "--uts"]
        users = ([False, True] if root_can_drop else [True, False]) if os.geteuid() == 0 else [True]
        for net in nets:
            for user in users:
                cmd = [unshare, *(["--user", "--map-root-user"] if user else []), *base, *(["--net"] if net else [])]
                if _probe(cmd):
                    return cmd, "unshare", user, net
    bwrap = _which("bwrap")
    if bwrap:
        # /tmp world-writable (the child may drop to another uid): ``--perms`` needs bwrap >= 0.5.
        for net, perms in [(net, perms) for net in nets for perms in (True, False)]:
            # As root the child drops to an unprivileged uid itself (which needs CAP_SETUID), then
            # drops every capability; otherwise bwrap drops them.
            cmd = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   *(["--unshare-net"] if net else []), *_bwrap_root(_visible_root(), perms),
                   *([] if root_can_drop else ["--cap-drop", "ALL"])]
            if _probe([*cmd, "--"]):
                return cmd, "bwrap", False, net
    return [], "none", False, False


def _bwrap_root(root: VisibleRoot, perms: bool = True) -> list[str]:
    """bubblewrap arguments for the REPL's filesystem (bwrap's root is an empty tmpfs): the links and
    read-only paths of ``root``, a fresh ``/tmp`` (mode 1777 with ``perms``), its own ``/proc``
    (``/proc/sys`` read-only) and ``/dev``."""
    out = ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev",
           *(["--perms", "1777"] if perms else []), "--tmpfs", "/tmp"]
    for path, target in root.links:
        out += ["--symlink", target, path]
    for path in root.read_only:
        out += ["--ro-bind", path, path]
    return out


def _bwrap_prefix(cmd: list[str], workdir: str) -> list[str]:
    """The bwrap command for one working directory, the only writable place besides ``/tmp``; the
    root itself read-only."""
    real, links = workdir_links(workdir)
    out = list(cmd)
    for path, target in links:
        out += ["--symlink", target, path]
    out += ["--bind", real, real, "--remount-ro", "/"]
    return [*out, "--chdir", workdir, "--"]


def plan_sandbox(workdir: str, network: bool = False, limits: ResourceLimits | None = None) -> SandboxPlan:
    """Decide how to launch a REPL child in ``workdir``.

    ``network``: allow network access (default off: a network namespace, on Linux only).
    ``limits``: explicit :class:`ResourceLimits` (default: sized from the context at launch).
    Namespaces need Linux and util-linux ``unshare`` (or bubblewrap); everything else degrades to the
    allowlisted environment and the resource limits, with a notice (once per process) saying what is
    missing.
    """
    root_can_drop = _root_can_drop(workdir)
    prefix, kind, user_ns, net_ns = _namespace_prefix(network, root_can_drop)
    plan = SandboxPlan(prefix=prefix, kind=kind, env=child_environment(workdir), limits=limits,
                       pid_namespace=bool(prefix), mount_namespace=bool(prefix), network_off=net_ns,
                       user_namespace=user_ns, cgroup_parent=cgroup_parent(), pdeathsig_prefix=_pdeathsig())
    if root_can_drop and not user_ns:
        plan.run_as = UNPRIVILEGED_UID
    if prefix:
        plan.root = _visible_root()
    if kind == "bwrap":
        plan.prefix = _bwrap_prefix(prefix, workdir)
    weaker = []
    if not prefix:
        weaker.append("no PID/mount namespaces (needs Linux, `unshare` or `bwrap`, and namespaces permitted), so "
                      "REPL code can see this user's other processes and write where this user can")
    if not network and not net_ns:
        weaker.append("its network access could not be turned off")
    if not plan.cgroup_parent and not prefix:
        weaker.append("the number of its processes is not limited")
    if os.geteuid() == 0 and plan.run_as is None:
        weaker.append("rlm runs as root and the REPL cannot switch to an unprivileged user (the interpreter or "
                      "the run directory is not readable by others); it keeps uid 0 with every capability dropped")
    if weaker:
        announce("REPL sandbox is weaker than asked on this system: " + "; ".join(weaker) + ".", plan)
    return plan


def _root_can_drop(workdir: str) -> bool:
    """Whether this process is root and a child running as :data:`UNPRIVILEGED_UID` could still start
    the interpreter and reach ``workdir``: every directory on the way to the interpreter's standard
    library, to this package and to ``workdir``'s parent is searchable by others (Linux only)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    import sysconfig

    targets = [sysconfig.get_path("stdlib"), os.path.dirname(os.path.realpath(sys.executable)),
               str(Path(__file__).parent), os.path.dirname(os.path.abspath(workdir))]
    for target in targets:
        path = os.path.realpath(target)
        while True:
            try:
                if not os.stat(path).st_mode & stat.S_IXOTH:
                    return False
            except OSError:
                return False
            if path == os.path.dirname(path):
                break
            path = os.path.dirname(path)
    return True


def _pdeathsig() -> list[str]:
    """``setpriv --pdeathsig KILL`` (util-linux), probed once, so the launched process is killed by the
    kernel when rlm dies, even by SIGKILL; empty where unavailable (the child then sets it for itself)."""
    setpriv = _which("setpriv") if sys.platform.startswith("linux") else None
    true = _which("true")
    if not (setpriv and true):
        return []
    cmd = [setpriv, "--pdeathsig", "KILL"]
    key = (*cmd, true)
    if key not in _PROBES:  # `true`, not the interpreter: old setprivs lack --pdeathsig, and it is cheap
        try:
            _PROBES[key] = subprocess.run([*cmd, true], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, timeout=15).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _PROBES[key] = False
    return cmd if _PROBES[key] else []


# --- what plan_sandbox looks up once (the same for every REPL of this process) -------------------
_WHICH: dict[tuple, str] = {}
_ROOTS: dict[tuple, VisibleRoot] = {}


def _which(name: str) -> str | None:
    """``shutil.which(name)``, remembered per ``PATH``: a remembered program is used only while it is
    still an executable regular file (else looked up again); "not found" is never remembered. The
    look-up function is part of the key, so a replaced ``shutil.which`` (tests) is always asked."""
    key = (name, os.environ.get("PATH", os.defpath), shutil.which)
    found = _WHICH.get(key)
    if found is not None and os.path.isfile(found) and os.access(found, os.X_OK):
        return found
    found = shutil.which(name)
    if found is None:
        _WHICH.pop(key, None)
    else:
        _WHICH[key] = found
    return found


def _visible_root() -> VisibleRoot:
    """:func:`~rlm_cli.repl.visible.visible_root`, computed once per interpreter layout (its key:
    ``sys.executable``, the prefixes, ``sys.path``, ``HOME``) and reused while it still describes
    the filesystem: every recorded symlink still reads the same target, and every read-only path
    still exists and is its own real path (no symlink appeared on the way). Otherwise it is computed
    again. A fresh copy each time (callers may extend it)."""
    key = (sys.executable, sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, tuple(sys.path),
           os.environ.get("HOME"))
    root = _ROOTS.get(key)
    if root is None or not _still_valid(root):
        root = visible_root()
        _ROOTS.clear()
        _ROOTS[key] = root
    return VisibleRoot(list(root.read_only), [list(link) for link in root.links])


def _still_valid(root: VisibleRoot) -> bool:
    try:
        for path, target in root.links:
            if os.readlink(path) != target:
                return False
        return all(os.path.realpath(path) == path and os.path.exists(path) for path in root.read_only)
    except (OSError, ValueError):
        return False


def announce(note: str, plan: SandboxPlan) -> None:
    """Add ``note`` to ``plan.notices`` unless this process already gave it."""
    if note not in _ANNOUNCED:
        _ANNOUNCED.add(note)
        plan.notices.append(note)


# --- the parent and the working directory --------------------------------------------------------
def harden_parent() -> None:
    """Make this process non-dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``) so that a process of the
    same user without CAP_SYS_PTRACE cannot read its ``/proc/<pid>/environ`` or memory. Side effect:
    no core dumps, no ptrace by unprivileged debuggers. A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a directory tree, including read-only files and directories the REPL left behind.

    Never follows symlinks out of the tree; errors on individual entries are ignored.
    """
    root = os.fspath(path)
    if not os.path.lexists(root):
        return
    if os.path.isdir(root) and not os.path.islink(root):
        with contextlib.suppress(OSError):
            os.chmod(root, stat.S_IRWXU)
        for top, dirs, _files in os.walk(root):
            for name in dirs:
                sub = os.path.join(top, name)
                if not os.path.islink(sub):
                    with contextlib.suppress(OSError):
                        os.chmod(sub, stat.S_IRWXU)
        shutil.rmtree(root, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(root)
