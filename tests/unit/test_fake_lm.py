"""The in-process FakeLM answers as the scripted HTTP server does through the real OpenAI path: same
texts, token counts, errors and their classification, streamed or not. The engine tests that use the
fake rest on this."""

from __future__ import annotations

import asyncio

import pytest
from fake_lm import FakeLM
from scripted_server import Reply, ScriptedServer

from rlm_cli.lm.client import LMClient

REPLIES = [
    Reply("hello"), Reply("x", status=401), Reply("nf", status=404), Reply("slow", status=429, headers={"Retry-After": "3"}),
    Reply("boom", status=500), Reply("This model's maximum context length is 10", status=400),
    Reply("u", status=422), Reply("abc", finish_reason="length"), Reply("", malformed="null_content", finish_reason="length"),
    Reply("counted", prompt_tokens=7, completion_tokens=3, cached_tokens=2), Reply("no usage", send_usage=False),
    *(Reply("text here", malformed=kind) for kind in ("cut", "error_body", "no_choices", "null_content", "invalid_json")),
]


async def _outcome(client: LMClient, stream: bool):
    try:
        r = await client.complete("openai/root", [{"role": "user", "content": "hi there"}], role="root",
                                  on_delta=(lambda piece: None) if stream else None)
        return ("ok", r.text, r.usage)
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "kind", None), str(exc))
    finally:
        await client.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_the_fake_answers_as_the_server_does_through_the_openai_path(stream):
    async def both(reply: Reply):
        fake = FakeLM().script("root", reply)
        with ScriptedServer() as server:
            server.script("root", reply)
            via_http = await _outcome(LMClient(max_retries=0, api_base=server.base_url, api_key="k"), stream)
            via_fake = await _outcome(LMClient(max_retries=0, api_key="k", backend_override=fake), stream)
            assert [r.body for r in fake.requests_for("root")] == [r.body for r in server.requests_for("root")]
            # The status the server recorded, when it finished writing (a client that gives up on a
            # broken stream may close the connection first; the server then records none).
            answered = [(f.status, h.status) for f, h in zip(fake.requests_for("root"), server.requests_for("root"),
                                                                strict=True) if h.status is not None]
            assert all(f == h for f, h in answered)
        return via_http, via_fake

    for reply in REPLIES:
        via_http, via_fake = asyncio.run(both(reply))
        assert via_fake == via_http, reply


def test_a_dropped_stream_is_a_lost_connection_and_delayed_replies_arrive():
    fake = FakeLM().script("root", Reply("abc", malformed="drop"), Reply("late", delay_s=0.05, chunk_delay_s=0.01))
    client = LMClient(max_retries=0, api_key="k", backend_override=fake)
    drop = asyncio.run(_outcome(client, stream=True))
    assert drop[0] == "ProviderError" and "the connection was lost during the reply" in drop[2]
    pieces = []
    result = asyncio.run(client.complete("openai/root", [{"role": "user", "content": "x"}], on_delta=pieces.append))
    assert result.text == "late" and "".join(pieces) == "late"
    assert fake.requests_for("root")[1].status == 200 and fake.in_flight == 0 and fake.max_in_flight == 1
