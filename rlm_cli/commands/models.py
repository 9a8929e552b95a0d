"""``rlm models``: aliases, the default model pair, and the chat models litellm knows for the providers
whose API keys are set. No network: litellm's bundled model map is the catalogue, read as JSON (see
:func:`model_catalogue`) so the command does not pay litellm's import."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

HELP = ("List model aliases, the default model, and the chat models litellm knows (with prices) for each "
        "provider whose API key is set. No network, unless --api-base URL: then the models that server "
        "lists (GET URL/models).")


def server_models(api_base: str) -> list[str]:
    """The model names an OpenAI-compatible server at ``api_base`` lists (``GET api_base/models``; when
    that lists none and ``api_base`` has no path, ``/v1/models``). Raises :class:`UsageError` for a
    URL that is not http(s), :class:`RlmError` (exit 1) when the server lists nothing or cannot be
    reached within a few seconds."""
    from urllib.parse import urlsplit

    from rlm_cli.errors import RlmError, UsageError
    from rlm_cli.settings.resolve import API_BASE_TIMEOUT_S, list_server_models
    from rlm_cli.view.safe import inline

    base = api_base.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--api-base {inline(api_base, 200)}: expected an http:// or https:// URL, "
                         "e.g. http://127.0.0.1:8000/v1")
    names = list_server_models(base + "/models", API_BASE_TIMEOUT_S)
    if not names and parts.path in ("", "/"):
        names = list_server_models(base + "/v1/models", API_BASE_TIMEOUT_S)
    if not names:
        raise RlmError(f"no models listed at {inline(base, 200)}/models (is the server running, and is this "
                       "its OpenAI-compatible base URL, usually ending in /v1?)")
    return names

def model_catalogue() -> dict[str, dict[str, Any]]:
    """litellm's bundled model map (name -> info), read without importing litellm."""
    from rlm_cli.lm.pricing import load_catalogue

    return load_catalogue()


def provider_models(provider: str, catalogue: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Chat models litellm's bundled map lists for ``provider``, sorted by name, as
    ``{"model", "input_per_mtok", "output_per_mtok", "max_input_tokens"}`` (USD per million tokens)."""
    catalogue = model_catalogue() if catalogue is None else catalogue
    out = []
    for name, info in catalogue.items():
        if not isinstance(info, dict) or info.get("litellm_provider") != provider or info.get("mode") != "chat":
            continue
        model = name if name.startswith(provider + "/") else f"{provider}/{name}"
        out.append({"model": model, "input_per_mtok": _per_m(info.get("input_cost_per_token")),
                    "output_per_mtok": _per_m(info.get("output_cost_per_token")),
                    "max_input_tokens": info.get("max_input_tokens")})
    return sorted(out, key=lambda m: m["model"])


def _per_m(value: Any) -> float | None:
    return round(float(value) * 1e6, 6) if isinstance(value, int | float) else None


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (schema rlm-models/1).")] = False,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="List this litellm provider (e.g. openai) even if its key is not set. Repeatable.")
    ] = None,
    api_base: Annotated[str | None, typer.Option(
        "--api-base", metavar="URL", help="List the models of the OpenAI-compatible server at URL (e.g. a local "
        "vLLM, llama.cpp or Ollama at http://127.0.0.1:8000/v1).")] = None,
) -> None:
    """List aliases, the default model pair, and the models of providers whose keys are set; with
    ``--api-base``, the models a server lists, as ``-m`` values (``openai/NAME``)."""
    if api_base is not None:
        _list_server(api_base, as_json)
        return
    from rlm_cli.settings.config_file import load_config
    from rlm_cli.settings.resolve import resolve

    cfg = load_config()
    s = resolve({}, config=cfg, probe=False, require_model=False)
    from rlm_cli.settings.providers import keyed_providers

    chosen = keyed_providers()
    for name in provider or ():
        if name not in [p for p, _ in chosen]:
            chosen.append((name, "--provider"))
    catalogue = model_catalogue() if chosen else {}
    groups = [{"provider": p, "key": var, "models": provider_models(p, catalogue)} for p, var in chosen]
    default = {"root": s.model, "sub": s.sub_model, "source": s.sources["model"], "detail": s.notes["model"]}
    if as_json:
        doc = {"schema": "rlm-models/1", "aliases": cfg.aliases, "default": default, "providers": groups}
        from rlm_cli.view.safe import json_text

        sys.stdout.write(json_text(doc, indent=2) + "\n")
        return
    from rlm_cli.view.safe import inline as v  # names from config, servers and the catalogue: made visible

    if cfg.aliases:
        print(f"Aliases ({v(cfg.path)}):")
        width = max(len(v(a)) for a in cfg.aliases)
        for alias, target in cfg.aliases.items():
            print(f"  {v(alias):<{width}}  {v(target)}")
        print()
    if s.model:
        print(f"Default: {v(s.model)} (root), {v(s.sub_model)} (sub)  "
              f"[{v(s.sources['model'])}: {v(s.notes['model'])}]")
    else:
        print("Default: none (without probing local servers; `rlm config show` probes them)")
    for group in groups:
        print(f"\n{v(group['provider'])} ({v(group['key'])}): {len(group['models'])} chat models")
        for m in group["models"]:
            print(f"  {v(m['model']):<48} {_price(m)}")
    if not groups:
        from rlm_cli.settings.providers import PROVIDER_DEFAULTS

        names = ", ".join(n for names, _, _ in PROVIDER_DEFAULTS for n in names[:1])
        print(f"\nNo provider key is set ({names}, ...); `rlm models -p openai` lists a provider anyway.",
              file=sys.stderr)


def _list_server(api_base: str, as_json: bool) -> None:
    """``rlm models --api-base URL``: the server's models, as ``openai/NAME`` (what ``-m`` takes with
    ``--api-base URL``); ``--json``: schema ``rlm-server-models/1`` with ``api_base`` and ``models``."""
    from rlm_cli.view.pipe import stdout_may_close
    from rlm_cli.view.safe import inline, json_text

    names = server_models(api_base)
    models = [f"openai/{n}" for n in names]
    with stdout_may_close():
        if as_json:
            doc = {"schema": "rlm-server-models/1", "api_base": api_base, "models": models}
            sys.stdout.write(json_text(doc, indent=2) + "\n")
            return
        print(f"{len(models)} model(s) at {inline(api_base, 200)} (use: rlm ask -m MODEL --api-base "
              f"{inline(api_base, 200)} ...):")
        for m in models:
            print(f"  {inline(m, 200)}")


def _price(m: dict[str, Any]) -> str:
    if m["input_per_mtok"] is None or m["output_per_mtok"] is None:
        cost = "price unknown"
    else:
        cost = f"${m['input_per_mtok']:g}/${m['output_per_mtok']:g} per M in/out"
    ctx = m.get("max_input_tokens")
    return cost + (f", {ctx // 1000}k context" if isinstance(ctx, int) and ctx >= 1000 else "")


def register(app: typer.Typer) -> None:
    """Add ``rlm models`` to the main app."""
    app.command("models", help=HELP)(models_command)
