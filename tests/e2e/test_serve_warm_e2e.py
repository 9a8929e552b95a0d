"""End-to-end: ``rlm serve SOURCE`` with its warm REPLs (the default: one per running slot). A variable
or file one request's REPL made is never visible to the next requests (each gets a fresh REPL, never
reused), the pool is refilled between requests, and a stopped server leaves no REPL behind."""

from __future__ import annotations

import re

from helpers import repl_pids, wait_until

SET = ("```repl\nleak_marker = 'from-request-1'\nopen('leak.txt', 'w').write('x')\n"
       "FINAL('set ' + str(context.count('warm-doc')))\n```")
CHECK = ("```repl\nimport os\nFINAL('seen ' + str('leak_marker' in globals()) + ' ' + str(os.path.exists('leak.txt')) "
         "+ ' ' + str(context.count('warm-doc')))\n```")


def _reply(body: dict) -> str:
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    return SET if re.search(r"QID-set", text) else CHECK


def test_no_request_sees_another_requests_repl(serve, scripted_server, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("warm-doc line\n" * 50)
    server = serve(str(doc), "--max-running", "2")
    scripted_server.default("root", _reply)
    client = server.client()
    ask = lambda q: client.chat.completions.create(  # noqa: E731
        model="rlm", messages=[{"role": "user", "content": q}]).choices[0].message.content
    assert ask("QID-set") == "set 50"
    # the pool refills: REPL processes are alive while no request runs (a cold server has none)
    assert wait_until(lambda: len(repl_pids(server.tmp)) >= 2, 60)
    for _ in range(4):  # warm REPLs from now on: none holds request 1's variable or file
        assert ask("QID-check") == "seen False False 50"
        assert ask("QID-set") == "set 50"
    assert server.stop() == 0
    assert not repl_pids(server.tmp)
