"""The one table of LLM providers rlm knows by name: the environment variables holding each one's
key, and for some a default root/sub model pair (the RLM paper pairs GPT-5 with GPT-5-mini).

Used by settings resolution (a key in the environment picks that provider's pair, in table order)
and by ``rlm models`` (which providers' models to list). Names are litellm's provider names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """A litellm provider: ``name``, ``key_vars`` (environment variables that may hold its key, in
    order), and the default ``root``/``sub`` models (litellm strings; None when rlm has no default)."""

    name: str
    key_vars: tuple[str, ...]
    root: str | None = None
    sub: str | None = None

    def key_var_set(self, env: dict[str, str]) -> str | None:
        """The first of :attr:`key_vars` set (non-blank) in ``env``, or None."""
        return next((n for n in self.key_vars if env.get(n, "").strip()), None)


PROVIDERS: tuple[Provider, ...] = (
    # With defaults, in order of preference when several keys are set.
    Provider("openai", ("OPENAI_API_KEY",), "openai/gpt-5", "openai/gpt-5-mini"),
    Provider("anthropic", ("ANTHROPIC_API_KEY",), "anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"),
    Provider("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini/gemini-2.5-pro", "gemini/gemini-2.5-flash"),
    Provider("mistral", ("MISTRAL_API_KEY",), "mistral/mistral-large-latest", "mistral/mistral-small-latest"),
    Provider("deepseek", ("DEEPSEEK_API_KEY",), "deepseek/deepseek-chat", "deepseek/deepseek-chat"),
    Provider("groq", ("GROQ_API_KEY",), "groq/openai/gpt-oss-120b", "groq/openai/gpt-oss-20b"),
    # Listed by `rlm models` when their key is set; no default pair.
    Provider("xai", ("XAI_API_KEY",)),
    Provider("openrouter", ("OPENROUTER_API_KEY",)),
    Provider("together_ai", ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY")),
    Provider("fireworks_ai", ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY")),
    Provider("cohere_chat", ("COHERE_API_KEY",)),
    Provider("perplexity", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY")),
    Provider("cerebras", ("CEREBRAS_API_KEY",)),
    Provider("deepinfra", ("DEEPINFRA_API_KEY",)),
)

PROVIDER_DEFAULTS: list[tuple[tuple[str, ...], str, str]] = [
    (p.key_vars, p.root, p.sub) for p in PROVIDERS if p.root and p.sub]
"""``(key variables, root model, sub model)`` for the providers with a default pair, in order of
preference (derived from :data:`PROVIDERS`)."""


def keyed_providers(env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """``(provider name, variable)`` for each provider of :data:`PROVIDERS` whose key is set in
    ``env`` (default: the process environment), in table order."""
    env = dict(os.environ) if env is None else env
    return [(p.name, var) for p in PROVIDERS if (var := p.key_var_set(env))]
