"""``rlm ls`` through the installed console script, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from loader_support import git_env, git_set, make_tree, write  # noqa: F401

pytestmark = pytest.mark.usefixtures("git_env")


def test_ls_json_lists_git_set_and_skips(cli, tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    proc = cli("ls", "repo", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    loaded = {f["path"] for f in doc["files"]}
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert loaded | set(skipped) == {"repo/" + p for p in git_set(root)}
    assert skipped == {"repo/image.txt": "binary (PNG image)", "repo/data.json": "binary (NUL bytes)"}
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["repo/sjis.txt"]["encoding"] in ("cp932", "shift_jis")
    assert by_path["repo/a.py"]["language"] == "python" and by_path["repo/empty.py"]["chars"] == 0
    assert doc["totals"]["files"] == len(loaded)
    assert doc["totals"]["chars"] == sum(f["chars"] for f in doc["files"])


def test_ls_table(cli, tmp_path):
    write(tmp_path, "src/app.py", "print('hi')\n")
    write(tmp_path, "src/package-lock.json", "{}\n")
    write(tmp_path, "src/logo.png", b"\x89PNG\r\n\x1a\n\0\0")
    proc = cli("ls", "./src", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["chars", "lines", "path"]  # a Rich table; on a pipe no rule under the header
    assert lines[1].split() == ["12", "1", "src/app.py"]
    assert "  src/logo.png  (binary (PNG image), 10 B)" in lines
    assert "  src/package-lock.json  (default exclude, 3 B)" in lines
    assert lines[-1].startswith("1 file, 12 chars") and lines[-1].endswith("2 skipped")
    assert proc.stderr == ""


def test_ls_errors_exit_2_with_one_line(cli, tmp_path):
    proc = cli("ls", "missing/dir", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "rlm: error: no such file or directory: missing/dir\n"
    proc = cli("ls", "-", cwd=tmp_path, input=b"")
    assert proc.returncode == 2 and "standard input is empty" in proc.stderr
    for i in range(3):
        write(tmp_path, f"d/f{i}.txt", "z" * 2000)
    proc = cli("ls", "d", "--max-input-size", "5kB", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "over --max-input-size (5 kB)" in proc.stderr and "--include" in proc.stderr
    proc = cli("ls", "d", "--max-file-size", "lots", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("rlm: error: --max-file-size: not a size")


def test_ls_stdin_in_chunks(cli, tmp_path):
    line = "2024-01-01 12:00:00 INFO request served in 12 ms — ok\n"
    data = (line * 600_000).encode()  # about 33 MB, more than one read chunk
    proc = cli("ls", "-", "--json", cwd=tmp_path, input=data)
    assert proc.returncode == 0, proc.stderr
    (f,) = json.loads(proc.stdout)["files"]
    assert (f["path"], f["chars"], f["lines"], f["bytes"]) == ("<stdin>", len(line) * 600_000, 600_000, len(data))


def test_ls_options_reach_the_loader(cli, tmp_path):
    for rel in ["a.py", "b.txt", "node_modules/m/i.js", "big.py"]:
        write(tmp_path, "p/" + rel, "x" * (3000 if rel == "big.py" else 5))
    def paths(*args):
        proc = cli("ls", "p", "--json", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return sorted(f["path"] for f in json.loads(proc.stdout)["files"])
    assert paths() == ["p/a.py", "p/b.txt", "p/big.py"]
    assert paths("--include", "*.py", "--max-file-size", "1kB") == ["p/a.py"]
    assert paths("--exclude", "*.txt", "--no-default-excludes") == ["p/a.py", "p/big.py", "p/node_modules/m/i.js"]
    os.symlink("a.py", tmp_path / "p" / "l.py")
    assert "p/l.py" not in paths() and "p/l.py" in paths("--follow-symlinks", "--include", "l.py")


def test_ls_help_shows_default_excludes(cli, tmp_path):
    proc = cli("ls", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    flat = "".join(proc.stdout.split())  # help wrapping may break lines anywhere, even at hyphens
    for pattern in ("package-lock.json", "*.min.js", "node_modules/", "vendor/isnotexcluded"):
        assert pattern in flat


def test_ls_does_not_import_litellm(tmp_path):
    write(tmp_path, "x.txt")
    # main() ends the process itself (after the atexit handlers): the check runs as one of them
    code = ("import atexit, sys\nsys.argv = ['rlm', 'ls', 'x.txt']\n"
            "atexit.register(lambda: print('litellm imported' if 'litellm' in sys.modules else 'LEAN', file=sys.stderr))\n"
            "from rlm_cli.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip().endswith("LEAN"), proc.stderr
