"""Saved REPL state (issue #11), in process: the child pickles its own namespace into a file only the
parent holds, the parent keeps the bytes opaque (never unpickled here), and a new REPL restores them
inside its sandbox, naming what it could not restore. Hostile cases: a value that cannot be pickled,
one over the size cap, a forged state report, state bytes that are not a pickle."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from helpers import no_subcalls, tiny_context

from rlm_cli.repl.channel import ProtocolError, parse_message
from rlm_cli.repl.process import ReplProcess
from rlm_cli.repl.state import SavedState, restore_report, save_state

_noop = no_subcalls
_ctx = tiny_context


async def _save(tmp_path, code: str, limit: int | None = None):
    ctx, index = _ctx(tmp_path)
    repl = ReplProcess(ctx, index, tmp_path / "repl" / "r0", keep_state=True)
    await repl.start()
    try:
        out = await repl.execute(code, _noop, 60)
        assert out.error is None, out.stderr
        return await (save_state(repl) if limit is None else save_state(repl, limit_bytes=limit))
    finally:
        await repl.close()


async def _restore(tmp_path, blob: bytes, code: str):
    ctx, index = _ctx(tmp_path)
    repl = ReplProcess(ctx, index, tmp_path / "repl" / "r1", state_in=blob)
    await repl.start()
    try:
        return repl.restore_report, await repl.execute(code, _noop, 60)
    finally:
        await repl.close()


def test_variables_survive_into_a_new_repl_and_the_unpicklable_are_named(tmp_path, monkeypatch):
    code = ("import re, collections, string\nhits = {'a': [1, 2, 3]}\ncounter = collections.Counter('abca')\n"
            "pattern = re.compile('x+')\nfn = lambda x: x\ngen = (i for i in range(3))\njson = 'rebound'\n")
    saved = asyncio.run(_save(tmp_path, code))
    assert isinstance(saved, SavedState), saved
    assert {"hits", "counter", "pattern", "string", "json"} <= set(saved.saved)
    assert not {"re", "collections", "itertools", "math"} & set(saved.saved)  # preloaded and unchanged
    skipped = dict(saved.skipped)
    assert "fn" in skipped and "gen" in skipped
    assert not {"context", "files", "llm_query", "grep"} & (set(saved.saved) | set(skipped))
    # The parent never unpickles: the bytes go back to a child as they are.
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("the parent unpickled REPL state"))
    report, out = asyncio.run(_restore(tmp_path, saved.blob,
                                       "print(hits['a'], counter['a'], pattern.pattern, re.escape('.'), "
                                       "context[:13], string.digits, json)"))
    assert out.error is None, out.stderr
    assert out.stdout.strip() == "[1, 2, 3] 2 x+ \\. ==> a.txt <== 0123456789 rebound"
    assert set(report["restored"]) >= {"hits", "counter", "pattern", "string", "json"}


def test_common_modules_need_no_import(tmp_path):
    """A weak root LM split rlm's offered block and lost its ``import itertools`` (NameError)."""
    out = asyncio.run(_run_once(tmp_path, "print(list(itertools.combinations('abc', 2))[0], re.escape('.'), "
                                          "math.isqrt(17), json.dumps([1]), collections.Counter('aab')['a'])"))
    assert out.error is None, out.stderr
    assert out.stdout.strip() == "('a', 'b') \\. 4 [1] 2"


async def _run_once(tmp_path, code: str):
    ctx, index = _ctx(tmp_path)
    repl = ReplProcess(ctx, index, tmp_path / "repl" / "r2")
    await repl.start()
    try:
        return await repl.execute(code, _noop, 60)
    finally:
        await repl.close()


def test_a_value_over_the_cap_is_skipped_and_named(tmp_path):
    saved = asyncio.run(_save(tmp_path, "small = 'x' * 10\nbig = 'y' * 200_000\n", limit=100_000))
    assert isinstance(saved, SavedState)
    assert "small" in saved.saved and "big" not in saved.saved
    assert "too large" in dict(saved.skipped)["big"]


def test_a_value_that_fails_to_unpickle_is_named_to_the_new_repl(tmp_path):
    code = ("class Thing:\n    pass\n"
            "import types\nmod = types.ModuleType('gone_mod')\nexec('class K:\\n    pass', mod.__dict__)\n"
            "import sys\nsys.modules['gone_mod'] = mod\nmod.K.__module__ = 'gone_mod'\nk = mod.K()\nkeep = 5\n")
    saved = asyncio.run(_save(tmp_path, code))
    assert isinstance(saved, SavedState)
    assert "k" in saved.saved and "keep" in saved.saved
    report, out = asyncio.run(_restore(tmp_path, saved.blob, "print(keep)"))
    assert out.stdout.strip() == "5"
    assert "k" in dict(report["unrestored"]) and "keep" in report["restored"]


def test_garbage_state_bytes_are_reported_not_fatal(tmp_path):
    report, out = asyncio.run(_restore(tmp_path, b"\x80\x05not a pickle", "print(len(context))"))
    assert out.error is None and out.stdout.strip() == "20"
    assert report["restored"] == [] and report["unrestored"][0][0] == "*"


def test_forged_state_reports_are_refused_or_bounded():
    with pytest.raises(ProtocolError):
        parse_message(b'{"type": "state_saved", "id": 1, "saved": [1], "skipped": [], "bytes": 0, "error": null}')
    with pytest.raises(ProtocolError):
        parse_message(b'{"type": "state_saved", "id": 1, "saved": [], "skipped": [["a"]], "bytes": 0, "error": null}')
    report = restore_report({"restored": ["ok", "\x1b]52;c;x\x07" * 100] * 20_000,
                             "unrestored": [["a", "r" * 10_000], "junk"]})
    assert len(report["restored"]) == 10_000
    assert all(len(n) <= 200 and "\x1b" not in n for n in report["restored"])
    assert report["unrestored"] == [["a", "r" * 200]]


class _Exit:
    """Unpickling this ends the process that unpickles it (as hostile saved state may)."""

    def __reduce__(self):
        import os

        return (os._exit, (3,))


def test_state_that_kills_the_repl_on_restore_costs_the_variables_not_the_run(tmp_path):
    blob = pickle.dumps({"schema": "rlm-repl-state/1", "vars": {}, "boom": _Exit()})
    report, out = asyncio.run(_restore(tmp_path, blob, "print(len(context))"))
    assert out.error is None and out.stdout.strip() == "20"
    assert report["restored"] == [] and report["unrestored"][0][0] == "*"
