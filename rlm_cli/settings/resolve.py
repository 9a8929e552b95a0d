"""Resolve what a run uses: flag > environment (``RLM_*``) > ``config.toml`` > built-in default.

:func:`resolve` is what ``rlm ask`` calls with the values given on its command line. Each resolved
value records its source in ``Settings.sources`` (``"flag"``, ``"env"``, ``"config"``, ``"default"``
or ``"auto"``) and a human note in ``Settings.notes`` (shown by ``rlm config show``).

When no model is chosen anywhere, a default is picked (source ``"auto"``), in this order:

1. an ``api_base`` is set: the first model its ``/models`` endpoint lists, as ``openai/<id>``;
2. a provider key is in the environment: that provider's root/sub pair from :data:`PROVIDER_DEFAULTS`
   (the first match in table order);
3. a local server answers on its default port (:data:`LOCAL_SERVERS`, 0.3 s timeout, ``GET`` only):
   its first model as ``openai/<name>`` with ``api_base`` set to the server's ``/v1``;
4. otherwise a one-line :class:`~rlm_cli.errors.UsageError` listing the three ways to choose a model.

Model aliases (the config's ``[aliases]``) apply to ``model``, ``sub_model``, ``--price`` and
``--allow-model`` names. ``allow_models`` (``--allow-model``, repeatable, or ``RLM_ALLOW_MODELS``,
comma-separated; the flag replaces the variable) names more models model code may call with
``llm_query(prompt, model=...)``, besides the root model, the sub-model and the aliases.
No litellm import here: the pairs below were checked against litellm's bundled cost map at
development time (``tests/test_settings.py`` keeps checking them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.errors import UsageError
from rlm_cli.settings.config_file import (
    KEYS,
    RESERVED_OPTIONS,
    Config,
    check_value,
    convert,
    load_config,
    parse_option_value,
)
from rlm_cli.settings.endpoints import LOCAL_API_KEY, Endpoint, assign_endpoints
from rlm_cli.settings.providers import PROVIDER_DEFAULTS

__all__ = ["LOCAL_API_KEY", "SESSION_KEYS", "Endpoint", "Settings", "check_prices", "resolve"]

LOCAL_SERVERS: list[tuple[str, str, str]] = [
    # (name, base URL, probe path): Ollama, then vLLM's and llama.cpp's default ports
    ("Ollama", "http://127.0.0.1:11434", "/api/tags"),
    ("OpenAI-compatible server", "http://127.0.0.1:8000", "/v1/models"),
    ("OpenAI-compatible server", "http://127.0.0.1:8080", "/v1/models"),
]
"""Local servers probed (in parallel) when nothing else names a model."""

PROBE_TIMEOUT_S = 0.3
API_BASE_TIMEOUT_S = 3.0
SESSION_KEYS = ("model", "sub_model", "api_base", "sub_api_base", "max_iterations", "max_depth", "max_sub_calls",
                "max_cost", "max_tokens", "timeout", "step_timeout", "concurrency")
"""Keys a continued conversation keeps (source ``"session"``) unless given as flags."""

NO_MODEL_HELP = ("no model chosen: pass -m/--model (or set RLM_MODEL, or `rlm config set model NAME`); "
                 "or set a provider key such as OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY; "
                 "or run a local server (Ollama on :11434, vLLM on :8000, llama.cpp on :8080) or pass --api-base URL")


@dataclass
class Settings:
    """Every resolved value of a run, where it came from, and the litellm options and prices."""

    model: str | None
    sub_model: str | None
    api_base: str | None
    max_iterations: int
    max_depth: int
    max_sub_calls: int | None
    max_cost: float | None
    max_tokens: int | None
    timeout: float | None
    step_timeout: float
    concurrency: int
    sub_api_base: str | None = None
    max_retries: int = 3
    api_key: str | None = field(default=None, repr=False)
    sandbox_warning: str = "on"  # read by the views (rlm_cli/view/words.py), not by the run
    mode: str = "rlm"  # --mode: auto | rlm | direct (rlm_cli/run/direct.py)
    aliases: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    role_endpoints: dict[str, Endpoint] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"root": {}, "sub": {}})
    prices: dict[str, Any] = field(default_factory=dict)
    allow_models: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None

    def limits(self, **extra: Any):
        """The budgets as a :class:`rlm_cli.run.budget.Limits`; ``extra`` sets the fields not resolved here."""
        from rlm_cli.run.budget import Limits

        return Limits(max_iterations=self.max_iterations, max_depth=self.max_depth,
                      max_sub_calls=self.max_sub_calls, max_cost=self.max_cost, max_tokens=self.max_tokens,
                      timeout=self.timeout, step_timeout=self.step_timeout, concurrency=self.concurrency,
                      **extra)

    def expand(self, model: str) -> str:
        """``model`` with aliases applied (for ``llm_query(prompt, model=...)`` names)."""
        return expand_alias(model, self.aliases)

    def value(self, key: str) -> Any:
        """The resolved value of a :data:`rlm_cli.settings.config_file.KEYS` entry."""
        return getattr(self, key)


def defaults() -> dict[str, Any]:
    """Built-in defaults of every key (budgets from :class:`rlm_cli.run.budget.Limits`)."""
    from rlm_cli.run.budget import Limits

    lim = Limits()
    return {"model": None, "sub_model": None, "api_base": None, "sub_api_base": None, "max_retries": 3,
            "sandbox_warning": "on", "mode": "rlm", **{k: getattr(lim, k) for k in KEYS if hasattr(lim, k)}}


def expand_alias(model: str, aliases: Mapping[str, str]) -> str:
    """Follow ``aliases`` from ``model`` (chains allowed, cycles stop); unknown names are returned as is."""
    seen: set[str] = set()
    while model in aliases and model not in seen:
        seen.add(model)
        model = aliases[model]
    return model


def parse_options(pairs: Iterable[Any] | None, flag: str = "-o") -> dict[str, Any]:
    """``-o KEY VALUE`` pairs -> dict. Items are ``(key, value)`` tuples or ``"KEY=VALUE"`` strings;
    values are parsed as JSON when they parse, else kept as text. Later pairs win."""
    out: dict[str, Any] = {}
    for item in pairs or ():
        if isinstance(item, str):
            key, eq, text = item.partition("=")
            if not eq:
                raise UsageError(f"{flag} {item}: expected KEY VALUE (or KEY=VALUE), e.g. {flag} temperature 0.2")
        else:
            key, text = item
        key = key.strip()
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"{flag}: option name {key!r} must be a non-empty word")
        if key in RESERVED_OPTIONS:
            raise UsageError(f"{flag} {key}: set by rlm itself and cannot be overridden")
        out[key] = parse_option_value(text)
    return out


def parse_prices(items: Iterable[str] | None, aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``--price MODEL=IN/OUT`` (USD per million input/output tokens) -> ``{model: Price}``."""
    from rlm_cli.lm.client import Price

    out: dict[str, Price] = {}
    for item in items or ():
        model, eq, spec = item.rpartition("=")
        cost_in, slash, cost_out = spec.partition("/")
        try:
            if not (eq and slash and model.strip()):
                raise ValueError
            price = Price(float(cost_in), float(cost_out))
        except ValueError:
            raise UsageError(f"--price {item}: expected MODEL=IN/OUT in USD per million tokens, "
                             "e.g. --price openai/my-model=0.15/0.60") from None
        if not (price.input_per_mtok >= 0 and price.output_per_mtok >= 0):
            raise UsageError(f"--price {item}: prices must be >= 0")
        out[expand_alias(model.strip(), aliases or {})] = price
    return out


def resolve(flags: Mapping[str, Any], *, env: Mapping[str, str] | None = None, config: Config | None = None,
            probe: bool = True, require_model: bool = True, session: Mapping[str, Any] | None = None) -> Settings:
    """Resolve every key of :data:`rlm_cli.settings.config_file.KEYS` for one run.

    ``flags`` holds the command-line values (None = not given) for those keys, plus optionally
    ``"options"`` and ``"sub_options"`` (``-o``/``--sub-option`` pairs, see :func:`parse_options`)
    and ``"prices"`` (``--price`` strings). ``env`` defaults to ``os.environ``, ``config`` to
    :func:`rlm_cli.settings.config_file.load_config`. ``probe=False`` never touches the network (no local-server or
    api_base probe); ``require_model=False`` leaves ``model`` None instead of raising. ``session``:
    the settings a continued conversation stored (:data:`SESSION_KEYS`, plus ``api_key_env``:
    ``{"root", "sub"}`` variable names); they rank below flags and above the environment (source
    ``"session"``). Endpoints per model: :mod:`rlm_cli.settings.endpoints`.
    """
    env = os.environ if env is None else env
    config = load_config() if config is None else config
    base = defaults()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    notes: dict[str, str] = {}
    kept = {k: v for k, v in (session or {}).items() if k in SESSION_KEYS and (v is not None or base[k] is None and k != "model")}
    for name, key in KEYS.items():
        flag_value = flags.get(name)
        env_text = env.get(key.env, "").strip()
        if flag_value is not None:
            flag = "--" + name.replace("_", "-")
            values[name], sources[name], notes[name] = check_value(key, flag_value, where=flag), "flag", flag
        elif name in kept:
            stored = kept[name]
            values[name] = None if stored is None else check_value(key, stored, where=f"the conversation's {name}")
            sources[name], notes[name] = "session", "the continued conversation"
        elif env_text:
            values[name] = convert(key, env_text, where=key.env)
            sources[name], notes[name] = "env", key.env
        elif name in config.values:
            values[name], sources[name], notes[name] = config.values[name], "config", str(config.path)
        else:
            values[name], sources[name], notes[name] = base[name], "default", "built-in"
    settings = Settings(**values, aliases=dict(config.aliases), sources=sources, notes=notes,
                        config_path=config.path)
    named: dict[str, str | None] = {}
    for name in ("model", "sub_model"):
        raw = getattr(settings, name)
        named[name] = raw if raw in settings.aliases else None
        if raw and raw != expand_alias(raw, settings.aliases):
            setattr(settings, name, expand_alias(raw, settings.aliases))
            notes[name] += f" (alias {raw})"
    if not settings.model:
        _auto_model(settings, env, probe, require_model)
    if not settings.sub_model and settings.model:
        settings.sub_model = settings.model
        notes["sub_model"] = "same as model"
    settings.options = {"root": {**config.options, **parse_options(flags.get("options"), "-o")},
                        "sub": {**config.sub_options, **parse_options(flags.get("sub_options"), "--sub-option")}}
    settings.prices = parse_prices(flags.get("prices"), settings.aliases)
    settings.allow_models = parse_allow_models(flags.get("allow_models"), env.get(ALLOW_MODELS_ENV, ""),
                                               settings.aliases)
    if settings.model:
        stored_keys = (session or {}).get("api_key_env") or {}
        assign_endpoints(settings, env, config.alias_endpoints, named,
                         stored_keys if isinstance(stored_keys, dict) else {})
    return settings


ALLOW_MODELS_ENV = "RLM_ALLOW_MODELS"
MAX_MODEL_NAME = 200


def check_model_name(name: str, where: str) -> str:
    """``name`` stripped; raises :class:`UsageError` (naming ``where``) when it is empty, longer than
    :data:`MAX_MODEL_NAME` characters, or holds whitespace or other unprintable characters."""
    name = name.strip()
    if not name or len(name) > MAX_MODEL_NAME or not name.isprintable() or any(c.isspace() for c in name):
        shown = repr(name[:60]) + ("..." if len(name) > 60 else "")
        raise UsageError(f"{where} {shown}: expected a model name (printable, no spaces, at most "
                         f"{MAX_MODEL_NAME} characters), e.g. {where} openai/gpt-5-mini")
    return name


def parse_allow_models(flag_values: Iterable[str] | None, env_text: str = "",
                       aliases: Mapping[str, str] | None = None) -> list[str]:
    """The models allowed besides the root, sub and alias models: ``--allow-model`` values when any
    were given, else ``RLM_ALLOW_MODELS`` split on commas; aliases expanded, duplicates dropped,
    order kept. Raises :class:`UsageError` for an unusable name (see :func:`check_model_name`)."""
    if flag_values:
        names = [check_model_name(v, "--allow-model") for v in flag_values]
    else:
        names = [check_model_name(v, ALLOW_MODELS_ENV) for v in env_text.split(",") if v.strip()]
    return list(dict.fromkeys(expand_alias(n, aliases or {}) for n in names))


def check_prices(settings: Settings) -> None:
    """With a cost budget, the root and sub models must have a price (``--price`` or litellm's map):
    raises a one-line :class:`UsageError` naming ``--price`` otherwise. No-op without ``max_cost``."""
    if settings.max_cost is None:
        return
    from rlm_cli.lm.pricing import has_price

    for role, model in (("root", settings.model), ("sub", settings.sub_model or settings.model)):
        if model and model not in settings.prices and not has_price(model):
            raise UsageError(f"--max-cost needs a price for the {role} model {model}, which litellm's price "
                             f"map does not list; pass --price {model}=IN/OUT (USD per million input/output "
                             "tokens)")


def _auto_model(s: Settings, env: Mapping[str, str], probe: bool, require_model: bool) -> None:
    if s.api_base:
        if probe:
            names = list_server_models(s.api_base.rstrip("/") + "/models", API_BASE_TIMEOUT_S)
            if names:
                _set_auto(s, f"openai/{names[0]}", None, f"first model listed by {s.api_base}")
                return
        if require_model:
            raise UsageError(f"no model chosen and {s.api_base.rstrip('/')}/models lists none: pass "
                             "-m/--model openai/NAME (or set RLM_MODEL, or `rlm config set model NAME`)")
        return
    for names, root, sub in PROVIDER_DEFAULTS:
        found = next((n for n in names if env.get(n, "").strip()), None)
        if found:
            _set_auto(s, root, sub, f"{found} is set")
            return
    if probe:
        hit = probe_local_servers()
        if hit is not None:
            label, base_url, model = hit
            _set_auto(s, f"openai/{model}", None, f"{label} at {base_url}")
            s.api_base = base_url + "/v1"
            s.sources["api_base"], s.notes["api_base"] = "auto", f"{label} at {base_url}"
            return
    if require_model:
        raise UsageError(NO_MODEL_HELP)


def _set_auto(s: Settings, root: str, sub: str | None, note: str) -> None:
    s.model = root
    s.sources["model"], s.notes["model"] = "auto", note
    if not s.sub_model and sub:
        s.sub_model = sub
        s.sources["sub_model"], s.notes["sub_model"] = "auto", note


def list_server_models(url: str, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """Model names from ``GET url`` (OpenAI ``{"data": [{"id"}]}`` or Ollama ``{"models": [{"name"}]}``).

    Returns ``[]`` on any failure. Proxies from the environment are ignored (loopback stays local).
    """
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            doc = json.loads(resp.read(1_000_000))
    except Exception:
        return []
    items = (doc.get("data") or doc.get("models") or []) if isinstance(doc, dict) else []
    names = []
    for item in items if isinstance(items, list) else []:
        name = (item.get("id") or item.get("name") or item.get("model")) if isinstance(item, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def probe_local_servers(servers: list[tuple[str, str, str]] | None = None,
                        timeout: float = PROBE_TIMEOUT_S) -> tuple[str, str, str] | None:
    """The first of ``servers`` (default :data:`LOCAL_SERVERS`, in order) that lists a model, as
    ``(label, base_url, model)``; None when none answers. Probes run in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    servers = LOCAL_SERVERS if servers is None else servers
    if not servers:
        return None
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        found = list(pool.map(lambda s: list_server_models(s[1] + s[2], timeout), servers))
    for (label, base_url, _path), names in zip(servers, found, strict=True):
        if names:
            return label, base_url, names[0]
    return None
