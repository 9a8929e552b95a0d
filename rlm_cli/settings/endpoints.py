"""Where each model's requests go: one :class:`Endpoint` (base URL and key) per model and per role.

A run may use models on different servers: a provider's root LM with a local sub-LM, or two local
servers. :func:`assign_endpoints` fills ``Settings.endpoints`` (model -> endpoint) and
``Settings.role_endpoints`` (``"root"``/``"sub"`` -> endpoint) from, most specific first:

- root: ``--api-base`` given as a flag; else the endpoint of the alias the model was named by (or of
  the first ``[aliases.NAME]`` table whose ``model`` it is); else ``api_base`` from a continued
  conversation, the environment or the config (or the local server found automatically);
- sub: ``--sub-api-base`` as a flag; else the alias endpoint of the sub-model; else ``sub_api_base``
  from a continued conversation, the environment or the config; else the root's endpoint when the
  sub-model is the root model; else ``api_base`` (as before ``--sub-api-base`` existed);
- any other model model code may call (aliases, ``--allow-model``): its alias endpoint, else
  ``api_base``.

An alias table without ``api_base`` means the provider's own endpoint, with the key of its
``api_key_env``. A key read from ``api_key_env`` belongs to that endpoint only: it is never paired
with another base URL. An endpoint with a base URL and no key, used by an ``openai/`` model while
``OPENAI_API_KEY`` is unset, gets the placeholder :data:`LOCAL_API_KEY` (the OpenAI client refuses to
send a request without a key; local servers ignore it). Keys are never stored: a conversation
keeps only the names of their variables (``api_key_env``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import UsageError

LOCAL_API_KEY = "sk-local"
"""Placeholder key for ``openai/`` models on an ``api_base`` when OPENAI_API_KEY is unset."""


@dataclass(frozen=True)
class Endpoint:
    """One server for a model's requests: ``api_base`` (None: the provider's default), ``api_key``
    (None: the provider's usual variable; never shown in ``repr``) and ``api_key_env`` (the name of
    the variable the key came from, or None)."""

    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None

    def record(self) -> dict[str, str | None]:
        """``{"api_base", "api_key_env"}``: what may be stored (never the key)."""
        return {"api_base": self.api_base, "api_key_env": self.api_key_env}


def _key_from(env_name: str | None, env: Mapping[str, str], where: str, required: bool) -> str | None:
    if not env_name:
        return None
    value = env.get(env_name, "").strip()
    if not value and required:
        raise UsageError(f"{where}: api_key_env {env_name} is not set; export {env_name}=KEY (or fix the name)")
    return value or None


def _placeholder(ep: Endpoint, model: str | None, env: Mapping[str, str]) -> Endpoint:
    if (ep.api_base and ep.api_key is None and model and model.startswith("openai/")
            and not env.get("OPENAI_API_KEY", "").strip()):
        return Endpoint(ep.api_base, LOCAL_API_KEY, None)
    return ep


def alias_endpoint(model: str | None, named: str | None, aliases: Mapping[str, str],
                   alias_endpoints: Mapping[str, Mapping[str, str]], env: Mapping[str, str],
                   required: bool = False) -> Endpoint | None:
    """The endpoint the config gives ``model``: that of the alias ``named`` (the name the user
    typed) when it has one, else of the first ``[aliases.NAME]`` table whose model is ``model``;
    None when no alias table gives it one. ``required``: a missing ``api_key_env`` variable raises
    :class:`UsageError` (for the root and sub models) instead of leaving the key to the provider."""
    candidates = ([named] if named in alias_endpoints else []) + [
        name for name, target in aliases.items() if target == model and name in alias_endpoints]
    for name in candidates:
        fields = alias_endpoints[name]
        key = _key_from(fields.get("api_key_env"), env, f"aliases.{name}", required)
        return Endpoint(fields.get("api_base"), key, fields.get("api_key_env"))
    return None


def assign_endpoints(s: Any, env: Mapping[str, str], alias_endpoints: Mapping[str, Mapping[str, str]],
                     named: Mapping[str, str | None], stored_key_env: Mapping[str, str | None]) -> None:
    """Fill ``s.endpoints``, ``s.role_endpoints`` and ``s.api_key`` (the root's key) of a
    :class:`~rlm_cli.settings.resolve.Settings` whose models and base URLs are resolved (rules in
    the module docstring). ``named``: the alias names typed for ``"model"``/``"sub_model"`` (None
    when a model string was given); ``stored_key_env``: ``{"root", "sub"}`` key variable names of a
    continued conversation. Raises :class:`UsageError` when an ``api_key_env`` the root or sub
    model needs is unset."""
    aliases = s.aliases

    def own(model: str | None, name: str | None, required: bool) -> Endpoint | None:
        return alias_endpoint(model, name, aliases, alias_endpoints, env, required)

    def stored(role: str, base: str | None) -> Endpoint:
        key_env = stored_key_env.get(role)
        return Endpoint(base, _key_from(key_env, env, f"the conversation's {role} endpoint", True), key_env)

    root_src, sub_src = s.sources.get("api_base"), s.sources.get("sub_api_base")
    if root_src == "flag":
        root = Endpoint(s.api_base)
    else:
        root = own(s.model, named.get("model"), True) or (
            stored("root", s.api_base) if root_src == "session" else Endpoint(s.api_base))
    root = _placeholder(root, s.model, env)
    sub_model = s.sub_model or s.model
    if sub_src == "flag":
        sub = Endpoint(s.sub_api_base)
    else:
        sub = own(sub_model, named.get("sub_model"), True)
        if sub is None and s.sub_api_base:
            sub = stored("sub", s.sub_api_base) if sub_src == "session" else Endpoint(s.sub_api_base)
        if sub is None:
            same = root.api_base is not None and root.api_base == s.api_base  # the same server: its key too
            sub = root if sub_model == s.model else Endpoint(s.api_base, root.api_key if same else None)
    sub = _placeholder(sub, sub_model, env)
    endpoints: dict[str, Endpoint] = {}
    for model in (*aliases.values(), *s.allow_models):
        endpoints.setdefault(model, _placeholder(own(model, None, False) or Endpoint(s.api_base), model, env))
    endpoints[sub_model] = sub
    endpoints[s.model] = root
    s.endpoints, s.role_endpoints, s.api_key = endpoints, {"root": root, "sub": sub}, root.api_key


def lm_endpoints(s: Any) -> dict[str, Any]:
    """Keyword arguments for :class:`~rlm_cli.lm.client.LMClient`: the default endpoint
    (``api_base``, ``api_key``: the root's base URL and key), ``endpoints`` (model -> endpoint) and
    ``role_endpoints`` (``(role, model)`` -> endpoint) of resolved settings ``s``."""
    roles = getattr(s, "role_endpoints", {}) or {}
    role_map = {}
    if roles:
        role_map = {("root", s.model): roles["root"], ("sub", s.sub_model or s.model): roles["sub"]}
    return {"api_base": s.api_base, "api_key": s.api_key, "endpoints": dict(getattr(s, "endpoints", {}) or {}),
            "role_endpoints": role_map}
