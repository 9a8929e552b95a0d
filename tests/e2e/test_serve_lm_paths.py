"""End-to-end: ``rlm serve`` shares its LM request paths between runs (rlm_cli/serve/lmpaths.py), so
sequential requests reuse one kept-alive connection to the provider instead of opening one per run;
the answers are unchanged."""

from __future__ import annotations

import scripted_server as scripted


def test_sequential_requests_reuse_the_provider_connection(serve, scripted_server, tmp_path, monkeypatch):
    opened: list[int] = []
    setup = scripted._Handler.setup

    def counting_setup(handler):
        opened.append(1)
        setup(handler)

    monkeypatch.setattr(scripted._Handler, "setup", counting_setup)
    doc = tmp_path / "doc.txt"
    doc.write_text("shared-paths line\n" * 40)
    server = serve(str(doc))
    scripted_server.default("root", '```repl\nFINAL("n=" + str(context.count("shared-paths")))\n```')
    client = server.client()
    for _ in range(4):
        reply = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "count"}])
        assert reply.choices[0].message.content == "n=40"
    roots = [r for r in scripted_server.requests if r.model == "root"]
    assert len(roots) == 4
    assert len(opened) == 1  # one connection for the four runs (was one per run)
    assert server.stop() == 0
