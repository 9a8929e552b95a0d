"""End-to-end: ``rlm serve`` loads its SOURCEs once and again only when they change on disk; a changed
or removed file is seen by the next request, and concurrent requests never see each other's
messages (the installed command, the scripted LM on loopback, the official ``openai`` client)."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from scripted_server import Reply
from serve_support import Server

OLD = 1_600_000_000

SHOW = '```repl\nimport re\nFINAL("files=" + ",".join(sorted(p.rsplit("/", 1)[-1] for p in files)) + " marks=" + ",".join(sorted(set(re.findall(r"MARK-[A-Z0-9]+", context)))) + " words=" + ",".join(sorted(set(re.findall(r"WORD-[a-z]+", context)))))\n```'  # noqa: E501
"""The root's one reply: the answer lists the loaded files, the MARK-s (messages) and WORD-s (files)."""


@pytest.fixture
def serve(cli, scripted_server, tmp_path):
    servers: list[Server] = []

    def start(*args: str, delay: float = 0.0) -> Server:
        scripted_server.default("root", Reply(SHOW, delay_s=delay))
        servers.append(Server(cli, tmp_path, *args))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _ask(server: Server, *messages: dict) -> str:
    resp = server.client().chat.completions.create(model="rlm", messages=list(messages))
    return resp.choices[0].message.content


def _loads(server: Server) -> int:
    return sum("loaded the SOURCEs" in line for line in server.stderr_lines)


def _write(path, text: str) -> None:
    path.write_text(text)
    os.utime(path, (OLD, OLD))  # the mtime is no proof: the ctime still changes with every write


def test_changed_and_removed_files_are_seen_by_the_next_request(serve, tmp_path, scripted_server):
    tree = tmp_path / "tree"
    tree.mkdir()
    _write(tree / "a.txt", "WORD-alpha\n")
    _write(tree / "b.txt", "WORD-beta\n")
    server = serve(str(tree))
    question = {"role": "user", "content": "what is loaded?"}
    assert _ask(server, question) == "files=a.txt,b.txt marks= words=WORD-alpha,WORD-beta"
    _write(tree / "a.txt", "WORD-gamma\n")  # same size as before
    assert _ask(server, question) == "files=a.txt,b.txt marks= words=WORD-beta,WORD-gamma"
    (tree / "b.txt").unlink()
    assert _ask(server, question) == "files=a.txt marks= words=WORD-gamma"
    # what the root LM was shown (the context's file list in its first message) followed the files too
    firsts = [r.body["messages"][-1]["content"] for r in scripted_server.requests_for("root")]
    assert "b.txt" in firsts[1] and "b.txt" not in firsts[2]


def test_sources_loaded_once_and_messages_never_cross(serve, tmp_path):
    doc = tmp_path / "doc.txt"
    _write(doc, "WORD-shared\n" * 1000)
    time.sleep(2.1)  # past the window in which fresh stamps cannot prove the file unchanged
    server = serve(str(doc), "--max-running", "4", delay=0.3)
    answers: dict[str, str] = {}

    def one(tag: str) -> None:
        answers[tag] = _ask(server, {"role": "system", "content": f"remember MARK-{tag}"},
                            {"role": "user", "content": "what is loaded?"})

    threads = [threading.Thread(target=one, args=(f"R{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    for tag, answer in answers.items():
        m = re.fullmatch(r"files=conversation\.txt,doc\.txt marks=(\S*) words=WORD-shared", answer)
        assert m and m.group(1) == f"MARK-{tag}", answer
    assert _ask(server, {"role": "user", "content": "again"}) == "files=doc.txt marks= words=WORD-shared"
    assert _loads(server) == 1
