"""``rlm models``: aliases, the default model pair, and the chat models litellm knows for the providers
whose API keys are set. No network: litellm's bundled model map is the catalogue, read as JSON (see
:func:`model_catalogue`) so the command does not pay litellm's import."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

HELP = ("List model aliases, the default model, and the chat models litellm knows (with prices) for each "
        "provider whose API key is set. No network.")

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
) -> None:
    """List aliases, the default model pair, and the models of providers whose keys are set."""
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
