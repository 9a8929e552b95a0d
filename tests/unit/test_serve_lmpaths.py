"""SharedPaths (rlm serve's LM request paths, shared by its runs): the path per model is chosen as
LMClient.backend_for chooses it, one instance each, left open when a run ends, closed at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.lm.backend_litellm import LitellmBackend
from rlm_cli.lm.backend_openai import OpenAIBackend
from rlm_cli.lm.client import LMClient
from rlm_cli.serve.lmpaths import SharedPaths


@pytest.mark.parametrize("backend", ["auto", "litellm"])
@pytest.mark.parametrize("model", ["openai/gpt-x", "anthropic/claude-x", "openai/"])
def test_same_choice_as_a_runs_own_client(backend, model):
    own = LMClient(api_key="k", backend=backend).backend_for(model)
    assert type(SharedPaths(backend).path_for(model)) is type(own)


def test_one_instance_per_path():
    paths = SharedPaths()
    assert paths.path_for("openai/a") is paths.path_for("openai/b")
    assert isinstance(paths.path_for("openai/a"), OpenAIBackend)
    assert isinstance(paths.path_for("groq/x"), LitellmBackend)


def test_bad_backend_is_refused():
    with pytest.raises(UsageError):
        SharedPaths("nope")


def test_a_run_ending_keeps_the_paths_the_server_closes_them():
    closed: list[str] = []

    class Path:
        async def aclose(self):
            closed.append("x")

    async def scenario():
        paths = SharedPaths()
        paths._paths["openai"] = Path()
        async with LMClient(api_key="k", backend_override=paths):
            pass  # a run ending (its client closed) leaves the shared paths open
        assert closed == [] and "openai" in paths._paths
        await paths.close()
        assert closed == ["x"] and paths._paths == {}

    asyncio.run(scenario())
