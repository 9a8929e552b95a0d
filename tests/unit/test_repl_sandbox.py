"""The REPL sandbox at the ``ReplProcess`` level: plans, limits, fallbacks, cleanup (fast, in-process)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from helpers import wait_until

from rlm_cli.repl import sandbox
from rlm_cli.repl.process import ReplProcess
from rlm_cli.repl.sandbox import (
    GIB,
    MIB,
    ResourceLimits,
    child_environment,
    default_limits,
    plan_sandbox,
    remove_tree,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")


async def _handler(op, args):
    return f"sub:{op}"


def run_steps(tmp: Path, codes: list[str], plan=None, context: str = "hello world\n", timeout: float = 10,
              after=None):
    """Run ``codes`` in one REPL over ``context``; returns the outcomes (and calls ``after(repl)``
    before closing)."""
    ctx = tmp / "context.txt"
    ctx.write_text(context)

    async def main():
        repl = ReplProcess(ctx, [["a.txt", 0, len(context)]], tmp / "repl" / "r0", sandbox=plan)
        await repl.start()
        try:
            outs = [await repl.execute(code, _handler, timeout) for code in codes]
            if after:
                after(repl)
            return outs
        finally:
            await repl.close()

    return asyncio.run(main())


def _no_namespaces(monkeypatch, tmp_path) -> sandbox.SandboxPlan:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox, "_ANNOUNCED", set())
    return plan_sandbox(str(tmp_path / "repl" / "r0"))


def test_child_environment_is_an_allowlist(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "GH_TOKEN", "PGPASSWORD", "MY_CREDENTIALS",
                 "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "http_proxy"):
        monkeypatch.setenv(name, "SECRET-VALUE")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = child_environment(str(tmp_path))
    assert "SECRET-VALUE" not in "".join(env.values())
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path) and env["LANG"] == "C.UTF-8"


def test_default_limits_scale_with_the_input(monkeypatch):
    for var in ("RLM_REPL_MAX_MEMORY_MB", "RLM_REPL_MAX_CPU_S", "RLM_REPL_MAX_PROCS", "RLM_REPL_MAX_FILE_MB"):
        monkeypatch.delenv(var, raising=False)
    small = default_limits(1000)
    assert small.address_space_bytes == 2 * GIB and small.file_size_bytes == 256 * MIB
    big = default_limits(GIB)
    assert big.address_space_bytes == 5 * GIB and big.file_size_bytes == 2 * GIB
    monkeypatch.setenv("RLM_REPL_MAX_PROCS", "12")
    monkeypatch.setenv("RLM_REPL_MAX_MEMORY_MB", "512")
    assert default_limits(0).max_tasks == 12 and default_limits(0).address_space_bytes == 512 * MIB


def test_weaker_isolation_is_announced_once(monkeypatch, tmp_path):
    first = _no_namespaces(monkeypatch, tmp_path)
    assert not first.prefix and len(first.notices) == 1
    assert "weaker than asked" in first.notices[0] and "network" in first.notices[0]
    assert plan_sandbox(str(tmp_path)).notices == []
    monkeypatch.setattr(sandbox, "_ANNOUNCED", set())
    assert "network" not in " ".join(plan_sandbox(str(tmp_path), network=True).notices)


def test_fallback_without_namespaces_still_isolates_what_it_can(monkeypatch, tmp_path):
    plan = _no_namespaces(monkeypatch, tmp_path)
    code = ("import os\nprint(sorted(os.environ))\n"
            "try:\n    open(f'/proc/{os.getppid()}/environ', 'rb').read()\n    print('READ PARENT')\n"
            "except OSError as exc:\n    print('denied', exc.errno)\n"
            "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS))")
    out = run_steps(tmp_path, [code, "import ctypes\nctypes.string_at(0)", "print('back', len(context))"],
                    plan=plan)
    assert "OPENAI" not in out[0].stdout and "READ PARENT" not in out[0].stdout, out[0]
    assert "(2147483648, 2147483648)" in out[0].stdout
    assert out[1].restarted and "SIGSEGV" in out[1].error
    assert "back 12" in out[2].stdout


@pytest.mark.parametrize("namespaces", [True, False])
def test_escaped_grandchildren_die_with_the_repl(monkeypatch, tmp_path, namespaces):
    plan = None if namespaces else _no_namespaces(monkeypatch, tmp_path)
    marker = f"rlm-test-{os.getpid()}-{namespaces}"
    code = (f"import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 300; : {marker}'], start_new_session=True)\n"
            f"subprocess.Popen(['sh', '-c', '(sleep 300; : {marker}) & sleep 301; : {marker}'])\n"
            "while True:\n    pass")
    outs = run_steps(tmp_path, [code, f"import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 300; : {marker}'],"
                                      " start_new_session=True)"], plan=plan, timeout=1.5)
    assert "timed out" in outs[0].error and outs[0].restarted
    assert wait_until(lambda: not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, marker)], 10)


def _cmdline_has(pid: str, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_workdir_is_removed_with_read_only_leftovers(tmp_path):
    code = ("import os\nos.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\n"
            "os.chmod('locked/inner/f', 0o400)\nos.chmod('locked/inner', 0o500)\nos.chmod('locked', 0)")
    outs = run_steps(tmp_path, [code])
    assert outs[0].error is None, outs[0].stderr
    assert not (tmp_path / "repl" / "r0").exists()


def test_remove_tree_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    outside.chmod(0o500)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "link").symlink_to(outside)
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep").exists()
    assert outside.stat().st_mode & 0o777 == 0o500
    outside.chmod(0o700)


def test_a_40_mb_context_loads_and_common_modules_import(tmp_path):
    context = ("line of text, " * 6 + "\n") * 480_000  # about 40 MB
    code = ("import json, re, collections, csv, sqlite3, decimal, asyncio, concurrent.futures, subprocess\n"
            "import multiprocessing, xml.etree.ElementTree, email, difflib, ctypes, hashlib, zlib, statistics\n"
            "words = context.split()\nprint(len(context) // 1_000_000, len(words))\n"
            "with concurrent.futures.ThreadPoolExecutor(16) as pool:\n"
            "    print(sum(pool.map(len, [context[i:i + 1000] for i in range(0, 10**6, 1000)])))")
    outs = run_steps(tmp_path, [code], context=context, timeout=60)
    assert outs[0].error is None, outs[0].stderr
    assert outs[0].stdout.splitlines() == [f"40 {len(context.split())}", "1000000"]


def test_limits_are_in_force_and_the_filesystem_is_read_only(tmp_path):
    plan = plan_sandbox(str(tmp_path / "repl" / "r0"),
                        limits=ResourceLimits(address_space_bytes=GIB, cpu_seconds=100, max_tasks=64,
                                              file_size_bytes=8 * MIB))
    code = ("import resource\nfor n in ('AS', 'CPU', 'FSIZE'):\n"
            "    print(n, resource.getrlimit(getattr(resource, 'RLIMIT_' + n)))\n"
            "open('ok.txt', 'w').write('fine')\n"
            "for path in ('/rlm-sandbox-escape', '/usr/rlm-sandbox-escape', '/etc/rlm-sandbox-escape'):\n"
            "    try:\n        open(path, 'w')\n        print('WROTE', path)\n"
            "    except OSError as exc:\n        print('refused', exc.errno)\n"
            "for path in (f'/tmp/rlm-sandbox-escape-{os.getpid()}', os.path.expanduser('~/../../escape')):\n"
            "    open(path, 'w').write('private')  # a private /tmp: nothing reaches the host's")
    outs = run_steps(tmp_path, ["import os", code, "open('big', 'wb').write(b'x' * (9 << 20))"], plan=plan)
    out = outs[1].stdout
    assert f"AS ({GIB}, {GIB})" in out and "CPU (100, 105)" in out and f"FSIZE ({8 * MIB}, {8 * MIB})" in out
    if plan.mount_namespace:
        assert "WROTE" not in out and out.count("refused") == 3, out
        assert outs[1].error is None and not (tmp_path / "escape").exists()
        assert not [p for p in os.listdir("/tmp") if p.startswith("rlm-sandbox-escape-")]
    assert "File too large" in outs[2].stderr and not outs[2].restarted


def test_network_is_off_by_default_and_on_when_asked(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
            "    print('CONNECTED')\nexcept OSError as exc:\n    print('no network', exc.errno)")
    try:
        off = plan_sandbox(str(tmp_path / "a" / "repl" / "r0"))
        (tmp_path / "a").mkdir()
        if off.network_off:
            assert "no network" in run_steps(tmp_path / "a", [code], plan=off)[0].stdout
        on = plan_sandbox(str(tmp_path / "b" / "repl" / "r0"), network=True)
        (tmp_path / "b").mkdir()
        assert "CONNECTED" in run_steps(tmp_path / "b", [code], plan=on)[0].stdout
    finally:
        server.close()


def test_kills_are_reported_without_asyncio_child_warnings(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    codes = ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "while True:\n    pass",
             "import os\nos._exit(7)", "while True:\n    pass", "print('fine')"]
    outs = run_steps(tmp_path, codes, timeout=1)
    assert "killed by SIGKILL" in outs[0].error and "timed out" in outs[1].error
    assert "exited with status 7" in outs[2].error and outs[4].stdout == "fine\n"
    assert not [r for r in caplog.records if "child process" in r.getMessage()]


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_bubblewrap_is_used_where_unshare_is_missing(monkeypatch, tmp_path):
    which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name == "unshare" else which(name))
    plan = plan_sandbox(str(tmp_path / "repl" / "r0"))
    if plan.kind != "bwrap":
        pytest.skip("bubblewrap cannot create namespaces here")
    marker = f"rlm-bwrap-{os.getpid()}"
    codes = ["import os\nprint(sorted(os.environ), [p for p in os.listdir('/proc') if p.isdigit()])",
             "open('/usr/rlm-bwrap-escape', 'w')",
             "open('mine.txt', 'w').write('ok')",
             f"import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 300; : {marker}'], start_new_session=True)\n"
             "while True:\n    pass",
             "import ctypes\nctypes.string_at(0)", "print('back', len(context))"]
    outs = run_steps(tmp_path, codes, plan=plan, timeout=1.5)
    assert "OPENAI" not in outs[0].stdout and "['1', '2']" in outs[0].stdout
    assert "Read-only file system" in outs[1].stderr and outs[2].error is None
    assert "timed out" in outs[3].error and "killed by SIGSEGV" in outs[4].error
    assert outs[5].stdout == "back 12\n"
    assert wait_until(lambda: not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, marker)], 10)
