"""URLs and git remotes as sources, through the installed ``rlm``: a local HTTP server on 127.0.0.1
and bare repositories on disk used through ``file://`` URLs. Nothing here leaves the machine."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from loader_support import git, git_env  # noqa: F401

pytestmark = pytest.mark.usefixtures("git_env")

NEEDLE = "NEEDLE-7391-in-the-page"
BIG = 200_000  # bytes, over the 100kB cap the tests set
BOMB = gzip.compress(b"\0" * 50_000_000, compresslevel=9)  # ~50 kB (under the cap) that inflate to 50 MB


class _Handler(http.server.BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if "no_length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            if k != "no_length":
                self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.partition("?")[0]
        if path == "/notes":
            self._send(200, f"plain notes: {NEEDLE}\n".encode())
        elif path == "/page":
            self._send(200, f"<html><body><p>{NEEDLE}</p></body></html>".encode(), "text/html; charset=utf-8")
        elif path == "/moved":
            self._send(302, Location="/notes")
        elif path == "/404":
            self._send(404, b"nope")
        elif path == "/500":
            self._send(500, b"boom")
        elif path == "/loop-a":
            self._send(302, Location="/loop-b")
        elif path == "/loop-b":
            self._send(302, Location="/loop-a")
        elif path == "/to-file":
            self._send(302, Location="file:///etc/passwd")
        elif path == "/big":
            self._send(200, b"x" * BIG)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(BIG // 10_000):
                self.wfile.write(b"y" * 10_000)
        elif path == "/bomb":
            self._send(200, BOMB, Content_Encoding="gzip")
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"a little")
            self.wfile.flush()
            self.release.wait(60)  # never sends the rest while the test runs
        else:
            self._send(404)


@pytest.fixture
def web():
    """A threaded HTTP server on 127.0.0.1; yields its base URL."""
    release = threading.Event()
    handler = type("H", (_Handler,), {"release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def make_remote(tmp_path: Path, name: str = "proj") -> tuple[Path, Path]:
    """A bare repository ``<name>.git`` with one commit on ``main`` (tag ``v1``) and a ``dev`` branch;
    returns (bare, work tree)."""
    bare = tmp_path / f"{name}.git"
    work = tmp_path / f"{name}-work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "src").mkdir()
    (work / "src" / "app.py").write_text(f"print('{NEEDLE}')\n")
    (work / "README.md").write_text("# proj\nversion one\n")
    (work / ".gitignore").write_text("*.log\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "one")
    git(work, "tag", "v1")
    git(work, "checkout", "-qb", "dev")
    (work / "README.md").write_text("# proj\nversion dev\n")
    git(work, "commit", "-qam", "dev")
    git(work, "checkout", "-q", "main")
    git(work, "push", "-q", str(bare), "main", "dev", "v1")
    return bare, work


def ls_json(cli, *args, **kw) -> dict:
    proc = cli("ls", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("rlm: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


# --- URLs -------------------------------------------------------------------------------------------

def test_url_loads_as_a_file_named_by_its_url(cli, web, tmp_path):
    doc = ls_json(cli, f"{web}/notes", f"{web}/moved", cwd=tmp_path)
    assert [f["path"] for f in doc["files"]] == [f"{web}/notes", f"{web}/moved"]
    assert doc["files"][0]["chars"] == len(f"plain notes: {NEEDLE}\n")
    details = [s["detail"] for s in doc["sources"]]
    assert details[0] == f"fetched {len(NEEDLE) + 14} B as text/plain"
    assert details[1].endswith(f"(1 redirect, to {web}/notes)")
    assert not list(tmp_path.glob("**/rlm-url-*"))  # the downloads are gone
    table = cli("ls", f"{web}/page", cwd=tmp_path)
    assert table.returncode == 0 and f"{web}/page: fetched" in table.stdout and "as text/html" in table.stdout


def test_url_credentials_are_never_shown(cli, web, tmp_path):
    host = web.removeprefix("http://")
    proc = cli("ls", f"http://alice:hunter2-pass@{host}/notes?token=tok-9876543&x=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hunter2-pass" not in proc.stdout + proc.stderr and "tok-9876543" not in proc.stdout
    assert f"{web}/notes?token=REDACTED&x=1" in proc.stdout
    proc = cli("ls", f"http://alice:hunter2-pass@{host}/404", cwd=tmp_path)
    one_line_error(proc, "HTTP 404")
    assert "hunter2-pass" not in proc.stderr


def test_url_in_context_of_ask(cli, scripted_server, web, tmp_path):
    scripted_server.script("root", f"```repl\nFINAL('found' if '{NEEDLE}' in context and "
                                   f"'{web}/notes' in files else 'missing')\n```")
    host = web.removeprefix("http://")
    proc = cli("ask", f"http://alice:hunter2-pass@{host}/notes", "where is the needle?", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "found"
    trajectory = cli.trajectory()
    assert trajectory["context"]["sources"] == [
        {"source": f"{web}/notes", "kind": "url", "detail": f"fetched {len(NEEDLE) + 14} B as text/plain"}]
    assert "hunter2-pass" not in json.dumps(trajectory)


@pytest.mark.parametrize(("path", "fragments"), [
    ("/404", ("/404: HTTP 404",)),
    ("/500", ("/500: HTTP 500",)),
    ("/loop-a", ("redirect loop",)),
    ("/to-file", ("refused a redirect to a file: URL",)),
    ("/big", ("over the per-download limit (100 kB, RLM_FETCH_MAX_BYTES)",)),
    ("/big-chunked", ("passed 100 kB",)),
    ("/bomb", ("passed 100 kB",)),
    ("/slow", ("timed out", "RLM_FETCH_TIMEOUT")),
])
def test_url_errors_are_one_line_exit_2(cli, web, tmp_path, path, fragments):
    limit = "1" if path == "/slow" else "60"
    proc = cli("ls", f"{web}{path}", cwd=tmp_path, RLM_FETCH_MAX_BYTES="100kB", RLM_FETCH_TIMEOUT=limit)
    one_line_error(proc, *fragments)


def test_url_counts_against_max_input_size(cli, web, tmp_path):
    proc = cli("ls", f"{web}/big", "--max-input-size", "50kB", cwd=tmp_path)
    one_line_error(proc, "what is left of --max-input-size (50 kB)")


def test_unreachable_url(cli, tmp_path):
    proc = cli("ls", "http://127.0.0.1:9/x", cwd=tmp_path)  # port 9 (discard): nothing listens
    one_line_error(proc, "could not fetch (connection refused)")


# --- git remotes ------------------------------------------------------------------------------------

def test_remote_repo_loads_with_git_rules_and_is_in_context(cli, scripted_server, tmp_path):
    bare, _ = make_remote(tmp_path)
    url = f"file://{bare}"
    doc = ls_json(cli, url, cwd=tmp_path)
    root = url.removesuffix(".git")
    assert [f["path"] for f in doc["files"]] == [f"{root}/.gitignore", f"{root}/README.md", f"{root}/src/app.py"]
    assert doc["sources"][0]["detail"].startswith("cloned commit ")
    scripted_server.script("root", "```repl\nFINAL(files['" + root + "/README.md'].splitlines()[1] + ' / ' "
                                   "+ str('" + NEEDLE + "' in context))\n```")
    proc = cli("ask", url, "which version?", "-q", "--no-log", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "version one / True"


def test_remote_ref_tag_and_branch(cli, tmp_path):
    bare, _ = make_remote(tmp_path)
    root = f"file://{bare}".removesuffix(".git")
    for ref, version in (("dev", "version dev"), ("v1", "version one"), ("main", "version one")):
        doc = ls_json(cli, f"file://{bare}#{ref}", cwd=tmp_path)
        readme = next(f for f in doc["files"] if f["path"] == f"{root}@{ref}/README.md")
        assert readme["chars"] == len(f"# proj\n{version}\n")
        assert doc["sources"][0]["detail"].endswith(f" at {ref}")
    proc = cli("ls", f"file://{bare}#no-such-branch", cwd=tmp_path)
    one_line_error(proc, "no ref 'no-such-branch'")


def test_remote_cache_is_reused_until_the_ref_moves(cli, tmp_path):
    bare, work = make_remote(tmp_path)
    url = f"file://{bare}"
    cache = tmp_path / "home" / "cache" / "git"
    first = ls_json(cli, url, cwd=tmp_path)["sources"][0]["detail"]
    [entry] = list(cache.iterdir())
    [checkout] = [p for p in entry.iterdir() if p.is_dir()]
    inode = checkout.stat().st_ino
    state = (entry / "state.json").read_text()

    second = ls_json(cli, url, cwd=tmp_path)["sources"][0]["detail"]
    assert second == first.replace("cloned", "cached")
    assert [p for p in entry.iterdir() if p.is_dir()] == [checkout] and checkout.stat().st_ino == inode
    assert json.loads((entry / "state.json").read_text())["commit"] == json.loads(state)["commit"]

    (work / "NEW.txt").write_text("new file\n")
    git(work, "add", "NEW.txt")
    git(work, "commit", "-qm", "two")
    git(work, "push", "-q", str(bare), "main")
    doc = ls_json(cli, url, cwd=tmp_path)
    assert doc["sources"][0]["detail"].startswith("cloned commit ")
    assert f"{url.removesuffix('.git')}/NEW.txt" in [f["path"] for f in doc["files"]]
    assert json.loads((entry / "state.json").read_text())["commit"] != json.loads(state)["commit"]

    # offline: the remote is gone, the cached checkout is used with a notice
    bare.rename(tmp_path / "moved.git")
    proc = cli("ls", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cannot reach" in proc.stderr and "using the cached commit" in proc.stderr
    assert "NEW.txt" in proc.stdout


def test_remote_that_does_not_exist(cli, tmp_path):
    proc = cli("ls", f"file://{tmp_path}/nothing-here.git", cwd=tmp_path)
    one_line_error(proc, "cannot clone file://", "nothing-here")
    assert not [p for p in (tmp_path / "home" / "cache" / "git").glob("*/*") if p.is_dir()]


def test_option_injection_through_url_or_ref_is_refused(cli, tmp_path):
    bare, _ = make_remote(tmp_path)
    pwned = tmp_path / "PWNED"
    attacks = [
        f"file://{bare}#--upload-pack=touch {pwned};git-upload-pack",
        f"file://{bare}#-u touch {pwned}",
        f"git+ssh://-oProxyCommand=touch%20{pwned}/x",
        f"ssh://-oProxyCommand=touch {pwned}/repo.git",
        f"git+file://{bare}#--output={pwned}",
    ]
    for attack in attacks:
        proc = cli("ls", "--", attack, cwd=tmp_path)
        one_line_error(proc, "beginning with '-'")
        assert not pwned.exists(), attack


def test_symlink_in_remote_never_reads_outside_the_checkout(cli, scripted_server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4242\n")
    bare, work = make_remote(tmp_path)
    os.symlink(secret, work / "leak.txt")
    git(work, "add", "leak.txt")
    git(work, "commit", "-qm", "link")
    git(work, "push", "-q", str(bare), "main")
    scripted_server.script("root", "```repl\nFINAL('leaked' if 'TOPSECRET' in context else 'safe')\n```")
    proc = cli("ask", f"file://{bare}", "q?", "--follow-symlinks", "-q", "--no-log", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "safe"


def test_serve_refuses_remote_sources(cli, tmp_path):
    proc = cli("serve", "gh:org/repo", "--port", "0", cwd=tmp_path)
    one_line_error(proc, "rlm serve takes local files and directories only")


def test_concurrent_clones_of_one_remote_leave_one_sound_checkout(cli, tmp_path):
    bare, _ = make_remote(tmp_path)
    url = f"file://{bare}"
    procs = [cli.popen("ls", url, "--json") for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    docs = [json.loads(o[0]) for o in outs]
    assert len({json.dumps(d["files"]) for d in docs}) == 1 and len(docs[0]["files"]) == 3
    [entry] = list((tmp_path / "home" / "cache" / "git").iterdir())
    commit = json.loads((entry / "state.json").read_text())["commit"]
    assert [p.name for p in entry.iterdir() if p.is_dir()] == [commit]  # no temporary clone left behind
    assert git(entry / commit, "status", "--porcelain") == ""


def test_remote_pinned_to_a_commit(cli, tmp_path):
    bare, work = make_remote(tmp_path)
    first = git(work, "rev-parse", "HEAD").strip()
    doc = ls_json(cli, f"file://{bare}#{first}", cwd=tmp_path)
    root = f"file://{bare}".removesuffix(".git") + f"@{first[:12]}"
    assert f"{root}/README.md" in [f["path"] for f in doc["files"]]
    bare.rename(tmp_path / "gone.git")  # a commit never moves: the cache answers without asking
    again = ls_json(cli, f"file://{bare}#{first}", cwd=tmp_path)
    assert again["files"] == doc["files"] and again["sources"][0]["detail"].startswith("cached commit")


def test_git_time_limit_ends_git_and_its_children(cli, tmp_path):
    pidfile = tmp_path / "ssh.pid"
    proc = cli("ls", "ssh://example.invalid/org/repo.git", cwd=tmp_path, RLM_GIT_TIMEOUT="1",
               GIT_SSH_COMMAND=f"sh -c 'echo $$ > {pidfile}; exec sleep 120'")
    one_line_error(proc, "git took longer than 1 s (RLM_GIT_TIMEOUT)")
    pid = int(pidfile.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), state  # killed with git's process group (at most not yet reaped)
