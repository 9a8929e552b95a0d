"""Drive ``rlm mcp`` with the MCP SDK's own client (stdio or streamable HTTP) in tests and the bench.

:func:`stdio_session` starts the installed ``rlm mcp`` as the SDK's ``stdio_client`` does and yields
an initialized ``ClientSession`` whose roots are ``roots`` (paths); :func:`http_session` connects
to a running ``rlm mcp --http``. :func:`root_reply` is the scripted root LM the tests share.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from helpers import RLM

NEEDLE = "NEEDLE-4711"


def root_reply(body: dict) -> str:
    """Root script keyed by the question's ``QID-<name>``: ``count`` counts the needles in the
    context; ``slow`` sleeps in the REPL; ``fan`` makes 6 batched sub-calls; ``keep`` sets a
    variable; ``recall`` answers with it (a continued question)."""
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    qids = re.findall(r"QID-(\w+)", text)
    qid = qids[-1] if qids else "none"
    if qid.startswith("slow"):
        return "```repl\nimport time\ntime.sleep(120)\n```"
    if qid.startswith("fan"):
        return ("```repl\nr = llm_query_batched([f'part {i}' for i in range(6)])\n"
                "FINAL('fanned ' + str(len(r)))\n```")
    if qid.startswith("keep"):
        return "```repl\nsecret_number = 41 + 1\nFINAL('kept')\n```"
    if qid.startswith("recall"):
        return "```repl\nFINAL('recalled ' + str(secret_number))\n```"
    if qid.startswith("noisy"):
        return ("```repl\nimport os, sys\nos.write(1, b'NOISE-ON-FD1\\n')\nprint('printed')\n"
                f"FINAL('n=' + str(context.count('{NEEDLE}')))\n```")
    return f'```repl\nFINAL("n=" + str(context.count("{NEEDLE}")))\n```'


def roots_callback(roots: list[Path]):
    """A ``list_roots_callback`` answering ``roots`` (mutable: change the list, then notify)."""
    from mcp_types import ListRootsResult, Root

    async def callback(context):
        return ListRootsResult(roots=[Root(uri=p.resolve().as_uri()) for p in roots])

    return callback


@contextlib.asynccontextmanager
async def stdio_session(cli, *args: str, roots: list[Path] | None = None, errlog=None, cwd: Path | None = None,
                        **env: str):
    """An initialized ``ClientSession`` on ``rlm mcp ARGS`` (the ``cli`` fixture's environment plus
    ``env``); ``errlog``: a file for the server's stderr."""
    import sys

    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=RLM, args=["mcp", *args], env=cli.env(**env),
                                   cwd=str(cwd) if cwd else None)
    async with stdio_client(params, errlog=errlog or sys.stderr) as (read, write), \
            ClientSession(read, write, list_roots_callback=roots_callback(roots) if roots is not None else None,
                          read_timeout_seconds=120) as session:
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def http_session(url: str, roots: list[Path] | None = None, headers: dict | None = None):
    """An initialized ``ClientSession`` on a running ``rlm mcp --http`` at ``url`` (…/mcp)."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(120.0)) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, list_roots_callback=roots_callback(roots) if roots is not None else None,
                          read_timeout_seconds=120) as session:
        await session.initialize()
        yield session
