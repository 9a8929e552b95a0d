"""How the REPL child is launched: its environment, namespaces, resource limits and cleanup.

The root LM's code runs in a child process (``child.py``) that must not see secrets and must not take
the machine down. What this module arranges (details and fallbacks: ``docs/sandbox.md``):

- an allowlisted environment (never a provider key, token or password);
- on Linux with ``unshare`` (util-linux): fresh user (where permitted), PID, mount and network
  namespaces with a new ``/proc``, so other processes (and their ``/proc/<pid>/environ``) are
  invisible and the network is off unless asked for; inside, ``child.py`` makes the filesystem
  read-only except its working directory, hides well-known credential stores and drops every
  capability before any model code runs. Where ``unshare`` cannot, bubblewrap (``bwrap``) does the
  same if installed;
- resource limits the child applies to itself (:class:`ResourceLimits`), plus a ``pids`` cgroup
  where one is writable (root ignores ``RLIMIT_NPROC``);
- :func:`remove_tree` for the private working directory, read-only files included.

Whatever is weaker than asked is said once per process through :attr:`SandboxPlan.notices`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlm_cli.secrets import is_secret_name

_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYTHONHASHSEED")
GIB = 1 << 30
MIB = 1 << 20
# Well-known credential stores, relative to a home directory; hidden inside a mount namespace.
_CREDENTIAL_STORES = (".aws", ".azure", ".config/gcloud", ".ssh", ".gnupg", ".netrc", ".docker", ".kube",
                      ".git-credentials", ".config/gh", ".pypirc", ".npmrc", ".config/rlm", ".huggingface",
                      ".cache/huggingface/token")
_CREDENTIAL_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                    "KUBECONFIG", "DOCKER_CONFIG", "NETRC", "RLM_HOME")
_ANNOUNCED: set[str] = set()  # notices already given by this process
_PROBES: dict[tuple[str, ...], bool] = {}
_CGROUP_SEQ = itertools.count(1)


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
    ``hide``: credential paths to cover inside the mount namespace.
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
    hide: list[str] = field(default_factory=list)

    def child_args(self, workdir: str, context_path: str, context_bytes: int) -> list[str]:
        """Extra ``child.py`` arguments: the limits (JSON) and, in a mount namespace, the lockdown
        (``context_path`` is kept visible)."""
        limits = self.limits or default_limits(context_bytes)
        args = limits.as_args()
        # RLIMIT_NPROC counts per user: only meaningful in a fresh user namespace, and never for root.
        if not (self.user_namespace and os.geteuid() != 0):
            args["tasks"] = None
        args["watchdog"] = limits.max_tasks if self.kind == "unshare" else None  # the child is PID 1
        out = ["--limits", json.dumps(args)]
        if self.kind == "unshare":  # bwrap does the same itself
            out += ["--lockdown", workdir, "--host-mntns", _mnt_ns_id()]
            for path in self.hide:
                if not _needed(path, [context_path]):
                    out += ["--hide", path]
        return out

    def new_cgroup(self, limits: ResourceLimits | None, context_bytes: int) -> str | None:
        """Create a fresh ``pids`` cgroup for one launch (None when unavailable)."""
        lim = limits or self.limits or default_limits(context_bytes)
        if not self.cgroup_parent or not lim.max_tasks:
            return None
        return _make_cgroup(self.cgroup_parent, lim.max_tasks)

    def command(self, argv: list[str], cgroup: str | None) -> list[str]:
        """The full command line: ``argv`` behind the prefix, entering ``cgroup`` first if given."""
        cmd = [*self.prefix, *argv]
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
    key = tuple(cmd)
    if key not in _PROBES:
        try:
            res = subprocess.run([*cmd, sys.executable, "-I", "-c", "pass"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15,
                                 env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            _PROBES[key] = res.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _PROBES[key] = False
    return _PROBES[key]


def _namespace_prefix(network: bool) -> tuple[list[str], str, bool, bool]:
    """(prefix, kind, user namespace used, network namespace used); ``[], "none"`` when none works.
    A bwrap prefix still lacks the per-directory arguments (see :func:`_bwrap_prefix`)."""
    if not sys.platform.startswith("linux"):
        return [], "none", False, False
    nets = [False] if network else [True, False]
    unshare = shutil.which("unshare")
    if unshare:
        base = ["--pid", "--fork", "--kill-child", "--mount-proc"]
        for net in nets:
            for user in [True, False] if os.geteuid() == 0 else [True]:
                cmd = [unshare, *(["--user", "--map-root-user"] if user else []), *base, *(["--net"] if net else [])]
                if _probe(cmd):
                    return cmd, "unshare", user, net
    bwrap = shutil.which("bwrap")
    if bwrap:
        for net in nets:
            cmd = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   *(["--unshare-net"] if net else []), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                   "--cap-drop", "ALL"]
            if _probe([*cmd, "--"]):
                return cmd, "bwrap", False, net
    return [], "none", False, False


def _bwrap_prefix(cmd: list[str], workdir: str, hide: list[str]) -> list[str]:
    """The bwrap command for one working directory: it is the only writable place; ``hide`` covered."""
    out = [*cmd, "--bind", workdir, workdir]
    for path in hide:
        out += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    return [*out, "--chdir", workdir, "--"]


def credential_paths() -> list[str]:
    """Existing well-known credential files and directories of this user (absolute paths)."""
    homes = {str(Path.home())}
    if os.environ.get("HOME"):
        homes.add(os.environ["HOME"])
    found = [os.path.join(h, rel) for h in homes for rel in _CREDENTIAL_STORES]
    found += [os.environ[v] for v in _CREDENTIAL_VARS if os.environ.get(v)]
    return sorted({os.path.realpath(os.path.expanduser(p)) for p in found if os.path.exists(p)})


def _needed(path: str, keep: list[str]) -> bool:
    """Whether hiding ``path`` would hide something the child needs (it contains one of ``keep``)."""
    return any(k == path or k.startswith(path.rstrip("/") + "/") for k in keep)


def plan_sandbox(workdir: str, network: bool = False, limits: ResourceLimits | None = None) -> SandboxPlan:
    """Decide how to launch a REPL child in ``workdir``.

    ``network``: allow network access (default off: a network namespace, on Linux only).
    ``limits``: explicit :class:`ResourceLimits` (default: sized from the context at launch).
    Namespaces need Linux and util-linux ``unshare`` (or bubblewrap); everything else degrades to the
    allowlisted environment and the resource limits, with a notice (once per process) saying what is
    missing.
    """
    prefix, kind, user_ns, net_ns = _namespace_prefix(network)
    plan = SandboxPlan(prefix=prefix, kind=kind, env=child_environment(workdir), limits=limits,
                       pid_namespace=bool(prefix), mount_namespace=bool(prefix), network_off=net_ns,
                       user_namespace=user_ns, cgroup_parent=_cgroup_parent())
    if prefix:
        keep = [workdir, sys.prefix, sys.base_prefix, sys.executable, str(Path(__file__).parent)]
        plan.hide = [p for p in credential_paths() if not _needed(p, keep)]
    if kind == "bwrap":
        plan.prefix = _bwrap_prefix(prefix, workdir, plan.hide)
    weaker = []
    if not prefix:
        weaker.append("no PID/mount namespaces (needs Linux, `unshare` or `bwrap`, and namespaces permitted), so "
                      "REPL code can see this user's other processes and write where this user can")
    if not network and not net_ns:
        weaker.append("its network access could not be turned off")
    if not plan.cgroup_parent and not prefix:
        weaker.append("the number of its processes is not limited")
    if weaker:
        announce("REPL sandbox is weaker than asked on this system: " + "; ".join(weaker) + ".", plan)
    return plan


def announce(note: str, plan: SandboxPlan) -> None:
    """Add ``note`` to ``plan.notices`` unless this process already gave it."""
    if note not in _ANNOUNCED:
        _ANNOUNCED.add(note)
        plan.notices.append(note)


# --- pids cgroups --------------------------------------------------------------------------------
_CGROUP_PARENT: list[str | None] = []


def _cgroup_parent() -> str | None:
    """A writable directory of a ``pids`` cgroup hierarchy (v1 or v2) holding this process, or None
    (found once per process)."""
    if not _CGROUP_PARENT:
        _CGROUP_PARENT.append(_find_cgroup_parent())
    return _CGROUP_PARENT[0]


def _find_cgroup_parent() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            own = [line.rstrip("\n").split(":", 2) for line in fh]
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    candidates = []
    for fields in mounts:
        sep = fields.index("-")
        fstype, opts, mountpoint = fields[sep + 1], fields[sep + 3], fields[4]
        if fstype == "cgroup" and "pids" in opts.split(","):
            rel = next((p for _, ctl, p in own if "pids" in ctl.split(",")), None)
        elif fstype == "cgroup2":
            rel = next((p for hid, _, p in own if hid == "0"), None)
        else:
            continue
        if rel is not None:
            candidates.append(os.path.join(mountpoint, rel.lstrip("/")))
    for path in candidates:
        if os.access(path, os.W_OK) and _try_cgroup(path):
            return path
    return None


def _try_cgroup(parent: str) -> bool:
    probe = _make_cgroup(parent, 16)
    if probe is None:
        return False
    remove_cgroup(probe)
    return True


def _make_cgroup(parent: str, max_tasks: int) -> str | None:
    _sweep_cgroups(parent)
    path = os.path.join(parent, f"rlm-{os.getpid()}-{next(_CGROUP_SEQ)}")
    try:
        os.mkdir(path)
    except OSError:
        return None
    try:
        with open(os.path.join(path, "pids.max"), "w") as fh:
            fh.write(str(max_tasks))
    except OSError:
        remove_cgroup(path)
        return None
    return path


def _sweep_cgroups(parent: str) -> None:
    """Remove empty cgroups left by rlm processes that are gone."""
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            m = re.fullmatch(r"rlm-(\d+)-\d+", name)
            if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(parent, name))


def remove_cgroup(path: str | None, wait_s: float = 2.0) -> None:
    """Remove a cgroup made for one launch, waiting up to ``wait_s`` seconds for its tasks to go."""
    if not path:
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


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
