"""Loading: decoding, binary sniffing, limits, errors, display paths, metadata."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from loader_support import (  # noqa: F401
    LATIN1_TEXT,
    SJIS_TEXT,
    UTF16_TEXT,
    git_env,
    git_init,
    make_tree,
    write,
)

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader import LoadOptions, display_prefix, load_sources, read
from rlm_cli.loader.binary import binary_reason
from rlm_cli.loader.decode import decode_bytes, stream_into

pytestmark = pytest.mark.usefixtures("git_env")


def load(sources, tmp_path, stdin=None, **opts):
    return load_sources([str(s) for s in sources], LoadOptions(**opts), tmp_path / "ctx.txt", stdin=stdin)


def texts(ctx) -> dict[str, str]:
    """path -> text, read back from the context file through the offsets."""
    whole = ctx.read()
    assert len(whole) == ctx.total_chars
    return {f.path: whole[f.offset:f.offset + f.chars] for f in ctx.files}


def test_encodings_decode_to_the_original_text(tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    ctx = load([root], tmp_path)
    got = texts(ctx)
    enc = {Path(f.path).name: f.encoding for f in ctx.files}
    p = str(root) + "/"
    assert got[p + "latin1.txt"] == LATIN1_TEXT * 3
    assert got[p + "sjis.txt"] == SJIS_TEXT * 20
    assert got[p + "utf16.txt"] == UTF16_TEXT
    assert got[p + "utf8bom.md"] == "# title\n"
    assert got[p + "empty.py"] == ""
    assert enc["latin1.txt"] == "cp1252" and enc["sjis.txt"] in ("cp932", "shift_jis")
    assert enc["utf16.txt"] == "utf-16" and enc["utf8bom.md"] == "utf-8-sig" and enc["a.py"] == "utf-8"


@pytest.mark.parametrize("data", [
    bytes(range(128, 256)) * 50,  # nothing like any encoding
    b"\xff" * 10_000,
    "déjà vu".encode() + b"\xe9",  # UTF-8 then one latin-1 byte
    "abc é".encode()[:-1],  # cut inside a UTF-8 sequence
    b"\xfe\xff\x00a\xd8",  # UTF-16-BE BOM, then a broken surrogate
    b"\xef\xbb\xbf\xff\xfe",  # UTF-8 BOM, then invalid bytes
])
def test_no_input_crashes_the_decoder(data, tmp_path):
    text, encoding = decode_bytes(data)
    assert isinstance(text, str) and encoding
    w = ContextWriter(tmp_path / "c.txt")
    fh = io.BytesIO(data)
    assert stream_into(w, "x", fh, fh.read(3), len(data), chunk_bytes=5)
    ctx = w.finish()
    assert texts(ctx)["x"] == text


def test_streaming_restarts_with_the_detected_encoding(tmp_path):
    # ASCII for megabytes, then latin-1: strict UTF-8 fails late, the file is decoded again
    data = b"plain ascii line\n" * 200_000 + (LATIN1_TEXT * 50).encode("latin-1", "replace")
    w = ContextWriter(tmp_path / "c.txt")
    w.add("before", "kept\n")
    fh = io.BytesIO(data)
    encoding = stream_into(w, "big", fh, fh.read(8192), len(data), chunk_bytes=1 << 20)
    w.add("after", "kept too\n")
    ctx = w.finish()
    assert encoding == "cp1252"
    got = texts(ctx)
    assert got["big"] == data.decode("cp1252") and got["before"] == "kept\n" and got["after"] == "kept too\n"
    assert [f.path for f in ctx.files] == ["before", "big", "after"]


def test_large_files_stream_with_the_same_result(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    make_tree(root)
    whole = texts(load([root], tmp_path))
    monkeypatch.setattr(read, "WHOLE_READ_BYTES", 10)
    monkeypatch.setattr("rlm_cli.loader.read.CHUNK_BYTES", 7)
    assert texts(load([root], tmp_path)) == whole


def test_binary_sniffing():
    assert binary_reason(b"\x89PNG\r\n\x1a\n....") == "binary (PNG image)"
    assert binary_reason(b"%PDF-1.7\n") == "binary (PDF document)"
    assert binary_reason(b"text\x00more") == "binary (NUL bytes)"
    assert binary_reason(b"\x01\x02\x03\x04\x05abc") == "binary (control characters)"
    assert binary_reason(b"\xff\xfeh\x00i\x00") is None  # UTF-16 text
    assert binary_reason("plain text, déjà\n".encode()) is None
    assert binary_reason(b"\x1b[31mred log line\x1b[0m\n") is None
    assert binary_reason(b"") is None


def test_binary_is_judged_from_a_prefix_only(tmp_path, monkeypatch):
    path = write(tmp_path, "big.bin", b"\x00" * (4 << 20))
    fds, reads = set(), []
    real_open, real_read = os.open, os.read

    def spy_open(file, flags, *a, **k):
        fd = real_open(file, flags, *a, **k)
        if str(file) == str(path):
            fds.add(fd)
        return fd

    def spy_read(fd, n):
        data = real_read(fd, n)
        if fd in fds:
            reads.append(len(data))
        return data

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "read", spy_read)
    ctx = load([path], tmp_path)
    assert ctx.files == [] and ctx.skipped[0].reason == "binary (NUL bytes)"
    assert reads == [8192]


def test_unreadable_file_is_reported_not_fatal(tmp_path, monkeypatch):
    # Tests run as root, which reads through chmod 000, so the failures are injected.
    root = tmp_path / "repo"
    git_init(root)
    write(root, "ok.txt", "fine\n")
    write(root, "locked.txt", "secret\n")
    write(root, "gone.txt", "read fails\n")
    write(root, "zbig.txt", "y" * 100_000)  # read in two steps: the second one fails
    real_open, real_read = os.open, os.read
    fd_names = {}

    def failing_open(file, flags, *a, **k):
        if str(file).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied", str(file))
        fd = real_open(file, flags, *a, **k)
        fd_names[fd] = Path(str(file)).name
        return fd

    def failing_read(fd, n):
        name = fd_names.get(fd)
        if name == "gone.txt" or (name == "zbig.txt" and n != 8192):
            raise OSError(5, "Input/output error")
        return real_read(fd, n)

    monkeypatch.setattr(os, "open", failing_open)
    monkeypatch.setattr(os, "read", failing_read)
    ctx = load([root], tmp_path)
    assert [Path(f.path).name for f in ctx.files] == ["ok.txt"]
    assert [(Path(s.path).name, s.reason) for s in ctx.skipped] == [
        ("gone.txt", "unreadable: Input/output error"), ("locked.txt", "unreadable: Permission denied"),
        ("zbig.txt", "unreadable: Input/output error")]
    assert texts(ctx) == {str(root) + "/ok.txt": "fine\n"}


def test_unreadable_file_with_chmod_as_non_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads through chmod 000; see test_unreadable_file_is_reported_not_fatal")
    path = write(tmp_path / "d", "locked.txt", "secret\n")
    os.chmod(path, 0)
    try:
        ctx = load([tmp_path / "d"], tmp_path)
    finally:
        os.chmod(path, 0o644)
    assert ctx.skipped[0].reason == "unreadable: Permission denied"


def test_max_file_size_skips_walked_files_not_named_ones(tmp_path):
    root = tmp_path / "d"
    big = write(root, "big.txt", "x" * 5000)
    write(root, "small.txt", "x\n")
    ctx = load([root], tmp_path, max_file_size=1000)
    assert [Path(f.path).name for f in ctx.files] == ["small.txt"]
    assert ctx.skipped[0].reason == "over --max-file-size (1 kB)" and ctx.skipped[0].size_bytes == 5000
    ctx = load([root, big], tmp_path, max_file_size=1000)
    assert [Path(f.path).name for f in ctx.files] == ["small.txt", "big.txt"]


def test_max_input_size_stops_before_reading(tmp_path):
    root = tmp_path / "d"
    for i in range(5):
        write(root, f"f{i}.txt", "y" * 1000)
    write(root, "pic.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50_000)  # binary: does not count
    with pytest.raises(InputError, match=r"over --max-input-size \(4 kB\).*--include"):
        load([root], tmp_path, max_input_size=4000)
    assert not (tmp_path / "ctx.txt").exists()
    assert len(load([root], tmp_path, max_input_size=6000).files) == 5


def test_missing_source_and_empty_stdin(tmp_path):
    with pytest.raises(InputError, match="no such file or directory: nope/x.txt"):
        load(["nope/x.txt"], tmp_path)
    with pytest.raises(InputError, match="standard input is empty"):
        load(["-"], tmp_path, stdin=io.BytesIO(b""))
    assert not list(tmp_path.glob(".rlm-spool-*"))


def test_stdin_is_loaded_once_and_mixed_with_files(tmp_path):
    f = write(tmp_path, "notes.md", "# notes\n")
    ctx = load(["-", f, "-"], tmp_path, stdin=io.BytesIO("from a pipe: café\n".encode("latin-1")))
    got = texts(ctx)
    assert list(got) == ["<stdin>", str(f)]
    assert got["<stdin>"] == "from a pipe: café\n" and ctx.files[0].encoding == "cp1252"
    assert not list(tmp_path.glob(".rlm-spool-*"))


def test_display_paths_and_duplicates(tmp_path, monkeypatch):
    work = tmp_path / "work"
    write(work, "src/app.py", "print(1)\n")
    write(work, "src/lib/util.py", "x = 1\n")
    monkeypatch.chdir(work)
    assert [f.path for f in load(["src/"], tmp_path).files] == ["src/app.py", "src/lib/util.py"]
    assert [f.path for f in load(["./src"], tmp_path).files] == ["src/app.py", "src/lib/util.py"]
    assert [f.path for f in load(["src/lib", "."], tmp_path).files] == [
        "src/lib/util.py", "src/app.py"]
    # a file named explicitly keeps its spelling; reached again through a directory, it is loaded once
    assert [f.path for f in load(["./src/app.py", "src"], tmp_path).files] == ["./src/app.py",
                                                                             "src/lib/util.py"]
    assert display_prefix(".") == "" and display_prefix("a/./b/") == "a/b/" and display_prefix("/") == "/"


def test_default_excludes_include_and_exclude(tmp_path):
    root = tmp_path / "p"
    for rel in ["index.js", "app.min.js", "package-lock.json", "node_modules/x/index.js",
                "node_modules/y/index.js", "vendor/lib.go", "src/a.py", "src/b.txt", "src/gen/c.py"]:
        write(root, rel)
    def names(**opts):
        ctx = load([root], tmp_path, **opts)
        pre = str(root) + "/"
        return ([f.path.removeprefix(pre) for f in ctx.files],
                {s.path.removeprefix(pre): s.reason for s in ctx.skipped})
    files, skipped = names()
    assert files == ["index.js", "src/a.py", "src/b.txt", "src/gen/c.py", "vendor/lib.go"]
    assert skipped == {"app.min.js": "default exclude", "package-lock.json": "default exclude",
                       "node_modules/": "default exclude (directory)"}
    files, _ = names(default_excludes=False)
    assert len(files) == 9
    files, skipped = names(exclude=["!package-lock.json", "src/gen/"])
    assert "package-lock.json" in files and skipped["src/gen/"] == "--exclude (directory)"
    files, skipped = names(include=["*.py", "!src/gen/"])
    assert files == ["src/a.py"]
    assert skipped[""] == "4 files not matched by --include"  # keyed by the directory itself
    files, _ = names(include=["src/"])
    assert files == ["src/a.py", "src/b.txt", "src/gen/c.py"]


def test_default_excludes_apply_to_git_listings(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    for rel in ["a.js", "node_modules/m/index.js", "node_modules/m/lib.js", "yarn.lock"]:
        write(root, rel)
    ctx = load([root], tmp_path)
    assert [Path(f.path).name for f in ctx.files] == ["a.js"]
    pre = str(root) + "/"
    assert {s.path.removeprefix(pre): s.reason for s in ctx.skipped} == {
        "yarn.lock": "default exclude", "node_modules/": "default exclude (2 files)"}


def test_metadata(tmp_path):
    f = write(tmp_path, "m.py", "a\nb\nc")
    ctx = load([f], tmp_path)
    (entry,) = ctx.files
    assert (entry.chars, entry.lines, entry.size_bytes, entry.language) == (5, 3, 5, "python")
    assert ctx.read()[entry.offset:entry.offset + entry.chars] == "a\nb\nc"
