"""The warm REPLs of ``rlm serve`` (:mod:`rlm_cli.serve.warm`): each is handed out once, a variable or
file one request's REPL made is never seen by another's, a new snapshot retires the old REPLs and
closing the pool kills every REPL it started (real sandboxed REPL children)."""

from __future__ import annotations

import asyncio
import os

from rlm_cli.loader.options import LoadOptions
from rlm_cli.serve.cache import SourceCache
from rlm_cli.serve.warm import WarmPool


async def _noop(op, args):  # sub-call handler: none are made here
    return None


async def _ready(pool: WarmPool, n: int) -> None:
    for _ in range(600):
        if len(pool._ready) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the warm REPLs did not start")


def _cache(tmp_path) -> SourceCache:
    doc = tmp_path / "doc.txt"
    doc.write_text("hello warm world\n" * 10)
    options = LoadOptions()
    options.allow_remote, options.progress = False, False
    return SourceCache([str(doc)], options)


def test_each_warm_repl_serves_one_request_and_sees_nothing_of_another(tmp_path):
    cache = _cache(tmp_path)
    used: list = []
    cache.build(tmp_path / "ctx.txt", None, used)
    snapshot = used[0]

    async def go():
        pool = WarmPool(2)
        assert pool.take(snapshot) is None  # none ready yet: the run starts its own REPL
        await _ready(pool, 2)
        first = pool.take(snapshot)
        await first.start()  # already started: a no-op
        out = await first.execute("leak = 'secret-of-request-1'\nopen('leak.txt', 'w').write('x')\n"
                                  "print(context.count('hello warm world'))", _noop, 30)
        assert out.error is None and out.stdout.strip() == "10"
        pid = first.proc.pid
        await first.close()  # returns at once; the kill runs in the background
        second = pool.take(snapshot)
        assert second is not None and second is not first and second.proc.pid != pid
        out = await second.execute("import os\nprint('leak' in globals(), os.path.exists('leak.txt'))", _noop, 30)
        assert out.stdout.strip() == "False False"
        assert first.workdir != second.workdir
        await second.close()
        await pool.close()
        for repl in (first, second):  # killed, directories removed
            assert repl.proc is None or repl.proc.returncode is not None
            assert not repl.rundir.exists()
        return pool

    pool = asyncio.run(go())
    assert pool.taken == 2 and pool.started >= 2
    cache.close()


def test_a_new_snapshot_retires_the_old_repls_and_close_kills_all(tmp_path):
    cache = _cache(tmp_path)
    used: list = []
    cache.build(tmp_path / "ctx.txt", None, used)

    async def go():
        pool = WarmPool(1)
        pool.fill(used[0])
        await _ready(pool, 1)
        stale = pool._ready[0]
        (tmp_path / "doc.txt").write_text("changed\n")
        os.utime(tmp_path / "doc.txt", (1, 1))  # an old mtime: the new fingerprint is trusted
        await asyncio.to_thread(cache.build, tmp_path / "ctx2.txt", None, used)
        old, new = used
        assert old is not new
        assert pool.take(new) is None  # the old snapshot's REPL is not handed out for the new one
        await _ready(pool, 1)
        fresh = pool.take(new)
        assert fresh is not None and fresh.snapshot is new
        out = await fresh.execute("print('changed' in context, 'hello' in context)", _noop, 30)
        assert out.stdout.strip() == "True False"
        await fresh.close()
        await pool.close()
        assert stale.proc is None and not stale.rundir.exists()
        assert fresh.proc is None and not fresh.rundir.exists()
        assert pool.take(new) is None  # closed

    asyncio.run(go())
    cache.close()
