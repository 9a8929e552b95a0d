"""Handing the context to the REPL child: ``context`` built in place (``child_context.py``) is a normal,
correct, canonical str for every kind of text, falls back to the plain read whenever a check fails, and
survives a restart. Memory and speed are measured by ``bench/bench_handoff.py``, not here."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import sys
from pathlib import Path

import pytest

from rlm_cli.repl import child, child_context
from rlm_cli.repl.child_context import load_context
from rlm_cli.repl.process import ReplProcess

CONTEXTS = {
    "ascii": "plain log line 42\n" * 40,
    "latin-1": "café naïve résumé, 12 €? no: 12 ¤\n" * 40,
    "bmp": "日本語のテキスト、ログ行です。\n" * 40,
    "astral": "emoji 😀 and a clef 𝄞 in text\n" * 40,
    "only the last character non-ASCII": "x" * 3000 + "\n" + "é",
    "only the last character astral": "y" * 3000 + "😀",
    "every kind, one after the other": "a" * 700 + "é" * 300 + "あ" * 300 + "😀" * 300,
    "newlines kept": "a\r\nb\rc\n\r\n",
    "two characters": "ab",
    "one character": "é",
    "empty": "",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "context.txt"
    path.write_bytes(text.encode("utf-8"))
    return path


def _assert_same(text: str, expected: str, path: Path) -> None:
    fresh = "".join(list(expected))  # an equal str built the ordinary way (a separate object if len >= 2)
    assert type(text) is str and len(text) == len(expected)
    assert sys.getsizeof(text) == sys.getsizeof(fresh)  # the canonical kind: the layout any equal str has
    assert text == expected == fresh
    if len(expected) >= 2:
        assert text is not fresh
    assert hash(text) == hash(fresh) and {fresh: "found"}[text] == "found" and {text: 1}[fresh] == 1
    assert text.encode("utf-8") == path.read_bytes()
    assert text[1:-1] == expected[1:-1] and text[::-1] == expected[::-1]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 1000, child_context.CHUNK_BYTES])
@pytest.mark.parametrize("name", list(CONTEXTS))
def test_context_is_built_in_place_and_equals_the_text(tmp_path, name, chunk_bytes):
    expected = CONTEXTS[name]
    path = _write(tmp_path, expected)
    text, method = load_context(str(path), chunk_bytes)
    _assert_same(text, expected, path)
    assert method == ("in place" if len(expected) >= 2 else "read")


@pytest.mark.parametrize("lie", ["one character more", "one character less", "a wider kind", "a narrower kind"])
def test_a_wrong_measure_falls_back_to_the_plain_read(tmp_path, monkeypatch, lie):
    """If the second pass disagrees with the first (the file changed), nothing is written past the
    end of the str, and the plain read is used."""
    expected = "ascii " * 300 if "wider" in lie else "日本語 " * 300
    path = _write(tmp_path, expected)
    measure = child_context._measure

    def lying_measure(fh, chunk_bytes):
        chars, kind = measure(fh, chunk_bytes)
        return {"one character more": (chars + 1, kind), "one character less": (chars - 1, kind),
                "a wider kind": (chars, 2), "a narrower kind": (chars, 1)}[lie]

    monkeypatch.setattr(child_context, "_measure", lying_measure)
    text, method = load_context(str(path), 64)
    assert method == "read"
    _assert_same(text, expected, path)


class _WriteWatch:
    """Wraps ``ctypes.memmove`` and ``_data_address``: records each write into the context str, and
    instead of making a write that would not stay inside the str's characters, records it in ``outside``
    (an assertion would be caught by the fallback); ``corrupt``: the write number whose bytes get changed."""

    def __init__(self, monkeypatch, corrupt: int | None = None) -> None:
        import ctypes

        self.region: tuple[int, int] | None = None
        self.writes: list[tuple[int, int]] = []
        self.outside: list[tuple[int, int]] = []
        self.corrupt = corrupt
        self._memmove, data_address = ctypes.memmove, child_context._data_address
        monkeypatch.setattr(ctypes, "memmove", self.memmove)

        def watched(text, kind, memmove):
            base = data_address(text, kind, memmove)
            self.region = (base, base + len(text) * max(kind, 1))
            return base

        monkeypatch.setattr(child_context, "_data_address", watched)

    def memmove(self, dst, src, count):
        if self.region is None:  # the probe
            return self._memmove(dst, src, count)
        if not (self.region[0] <= dst and dst + count <= self.region[1]):
            self.outside.append((dst, count))
            return dst
        self.writes.append((dst, count))
        if len(self.writes) == self.corrupt:
            src = bytes([src[0] ^ 1]) + bytes(src[1:])
        return self._memmove(dst, src, count)


@pytest.mark.parametrize("name", ["latin-1", "bmp", "astral", "every kind, one after the other"])
def test_every_write_stays_inside_the_str_even_if_the_measure_is_short(tmp_path, monkeypatch, name):
    expected = CONTEXTS[name]
    path = _write(tmp_path, expected)
    watch = _WriteWatch(monkeypatch)
    text, method = load_context(str(path), 16)
    assert method == "in place" and len(watch.writes) > 10 and not watch.outside
    assert sum(count for _, count in watch.writes) == watch.region[1] - watch.region[0]
    monkeypatch.undo()
    measure = child_context._measure

    def short_measure(fh, chunk_bytes):
        chars, kind = measure(fh, chunk_bytes)
        return chars - 3, kind

    monkeypatch.setattr(child_context, "_measure", short_measure)
    watch = _WriteWatch(monkeypatch)
    text, method = load_context(str(path), 16)
    assert method == "read" and text == expected and watch.writes and not watch.outside


def test_a_chunk_that_does_not_read_back_falls_back_to_the_plain_read(tmp_path, monkeypatch):
    expected = CONTEXTS["bmp"]
    path = _write(tmp_path, expected)
    watch = _WriteWatch(monkeypatch, corrupt=2)
    text, method = load_context(str(path), 64)
    assert len(watch.writes) == 2 and method == "read"
    _assert_same(text, expected, path)


def test_unsupported_versions_use_the_plain_read(tmp_path, monkeypatch):
    monkeypatch.setattr(child_context, "_VERSIONS", ((2, 0), (2, 7)))
    path = _write(tmp_path, CONTEXTS["bmp"])
    text, method = load_context(str(path))
    assert method == "read"
    _assert_same(text, CONTEXTS["bmp"], path)


@pytest.mark.parametrize("data", [b"abc\xffdef", b"abc" * 100 + b"\xe3\x81", b"\xc3" + b"x" * 10])
def test_invalid_utf8_raises_as_the_plain_read_does(tmp_path, data):
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(UnicodeDecodeError):
        load_context(str(path), 7)
    with pytest.raises(FileNotFoundError):
        load_context(str(tmp_path / "missing.txt"))


def test_child_modules_are_standard_library_only():
    names = ["child", "child_sandbox", "child_context", "child_grep", "child_repl"]
    for name in names:
        tree = ast.parse((Path(child.__file__).with_name(f"{name}.py")).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}.py: relative import (it runs as a script)"
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top == "__future__" or top in sys.stdlib_module_names, f"{name}.py imports {module}"


def test_child_command_line():
    args = child.parse_args(["--sock", "5", "--context", "6", "--index", "7", "--root", '{"read_only": ["/usr"]}',
                             "--host-mntns", "mnt:[1]", "--run-as", "65534"])
    assert (args.sock, args.context, args.index, args.root, args.host_mntns, args.limits, args.lockdown,
            args.run_as) == (5, 6, 7, '{"read_only": ["/usr"]}', "mnt:[1]", "", "", "65534")
    # context and index are inherited descriptors, never paths the REPL could replace
    for bad in (["--sock", "5", "--context", "6"], ["--sock", "x", "--context", "6", "--index", "7"],
                ["--sock", "5", "--context", "c.txt", "--index", "7"],
                ["--sock", "5", "--context", "6", "--index", "7", "--bogus", "1"], ["--sock"]):
        with pytest.raises(SystemExit) as exc:
            child.parse_args(bad)
        assert exc.value.code == 2


CHECK = """import hashlib, sys
fresh = ''.join(context.splitlines(True))
print(sys.getsizeof(context) == sys.getsizeof(fresh), context == fresh, hash(context) == hash(fresh))
print(len(context), hashlib.sha256(context.encode()).hexdigest())
print({p: hashlib.sha256(t.encode()).hexdigest() for p, t in files.items()})
print(context[-1] == files['b.log'][-1], {fresh: 'found'}[context])
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")
def test_the_repl_sees_the_context_also_after_a_restart(tmp_path):
    """A context spanning several chunks, whose only astral character is the last one, with a file of
    other non-ASCII text in front: correct in the REPL, and again after the REPL crashed."""
    body_a = "résumé — 日本語の行\n" * 2000
    body_b = "GET /api/v1/items 200 12ms\n" * 40_000 + "😀"
    head_a, head_b = "==> a.txt <==\n", "==> b.log <==\n"
    context = head_a + body_a + head_b + body_b
    index = [["a.txt", len(head_a), len(body_a)], ["b.log", len(head_a + body_a + head_b), len(body_b)]]
    assert len(context.encode()) > 3 * child_context.CHUNK_BYTES
    path = _write(tmp_path, context)
    methods = []

    async def main():
        repl = ReplProcess(path, index, tmp_path / "repl" / "r0")
        await repl.start()
        try:
            methods.append(repl.load_method)
            outs = [await repl.execute(code, _handler, 60) for code in (CHECK, "import os\nos._exit(3)", CHECK)]
            methods.append(repl.load_method)
            return outs
        finally:
            await repl.close()

    first, crash, again = asyncio.run(main())
    assert crash.restarted and "status 3" in crash.error
    files = {"a.txt": _sha(body_a), "b.log": _sha(body_b)}
    expected = ["True True True", f"{len(context)} {_sha(context)}", str(files), "True found"]
    assert first.error is None and again.error is None, (first.stderr, again.stderr)
    assert first.stdout.splitlines() == expected and again.stdout.splitlines() == expected
    assert methods == ["in place", "in place"]


async def _handler(op, args):
    return f"sub:{op}"
