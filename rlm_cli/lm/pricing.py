"""litellm's bundled model map (prices and context windows), read without importing litellm.

litellm ships ``model_prices_and_context_window_backup.json`` inside its package; with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (which rlm always sets) litellm prices its own calls from this
very file. Importing litellm to read it costs ~3 s of CPU and ~170 MB; parsing the file costs ~30 ms
and ~8 MB, which are freed again: only the entries asked for are kept.

Used by ``rlm models`` (the whole map), by the run's sub-LM prompt size (context windows) and by
:mod:`rlm_cli.lm.backend_openai`, which calls OpenAI-compatible servers without litellm and so prices its
calls here with :func:`cost_usd`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from typing import Any

FILE_NAME = "model_prices_and_context_window_backup.json"
_entries: dict[str, dict[str, Any] | None] = {}
_lock = threading.Lock()  # a prewarm thread may parse while the run asks
_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


def _catalogue_path() -> str | None:
    """Where litellm keeps the JSON file, or None."""
    spec = importlib.util.find_spec("litellm")  # locates the package without executing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, FILE_NAME)
        if os.path.isfile(path):
            return path
    return None


def _catalogue_text() -> str | None:
    """The JSON file's text, or None when it is not where litellm keeps it."""
    path = _catalogue_path()
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _mentions(path: str, needles: list[str]) -> bool:
    """Whether the file at ``path`` contains any of ``needles``, read in 1 MiB pieces: a miss (a local
    server's model) costs ~1 MB of memory instead of the whole 3.5 MB file held twice (bytes and
    text), at the moment the REPL is starting. True when the file cannot be read (the caller then
    takes the path that reports it)."""
    keys = [n.encode("utf-8") for n in needles]
    overlap = max((len(k) for k in keys), default=1) - 1
    tail = b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                buf = tail + chunk
                if any(k in buf for k in keys):
                    return True
                tail = buf[len(buf) - overlap:] if overlap else b""
    except OSError:
        return True
    return False


def load_catalogue(text: str | None = None) -> dict[str, dict[str, Any]]:
    """The whole map: litellm model name -> info dict (``input_cost_per_token`` in USD per token,
    ``max_input_tokens`` in tokens, ``litellm_provider``, ``mode``...). Read from the JSON file when
    it is where litellm keeps it (``text``: its content, already read), else from
    ``litellm.model_cost`` (importing litellm)."""
    text = _catalogue_text() if text is None else text
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data.pop("sample_spec", None)
            return data
    from rlm_cli.lm.backend_litellm import load_litellm

    return dict(load_litellm().model_cost)


def candidates(model: str) -> list[str]:
    """Names under which litellm's map may list ``model``: itself, then without its provider prefix
    (``openai/gpt-4o-mini`` is listed as ``gpt-4o-mini``)."""
    names = [model]
    provider, slash, rest = model.partition("/")
    if slash and rest:
        names.append(rest)
    return names


def model_info(*models: str) -> dict[str, Any] | None:
    """The map's entry for the first of ``models`` (see :func:`candidates`), or None when it is not
    listed. Every name given is looked up in the same pass: pass the run's root and sub models
    together and the file is parsed once, or not at all when none of them occurs in it (a local
    server's model). Memoised per name; a later miss reads the file again."""
    with _lock:
        missing = [m for m in models if m not in _entries]
        path = _catalogue_path() if missing else None
        if path is not None and not _mentions(path, [f'"{n}"' for m in missing for n in candidates(m)]):
            _entries.update(dict.fromkeys(missing))  # not even mentioned: no need to parse 3 MB of JSON
        elif missing:
            catalogue = load_catalogue()
            for name in {*_entries, *models}:
                _entries[name] = next((catalogue[n] for n in candidates(name)
                                       if isinstance(catalogue.get(n), dict)), None)
        return _entries[models[0]]


def context_window(model: str) -> int | None:
    """The model's input limit in tokens (``max_input_tokens``, else ``max_tokens``), or None."""
    info = model_info(model) or {}
    tokens = info.get("max_input_tokens") or info.get("max_tokens")
    return int(tokens) if tokens else None


def has_price(model: str) -> bool:
    """Whether the map prices ``model`` per token (both input and output prices listed)."""
    info = model_info(model)
    return bool(info) and info.get("input_cost_per_token") is not None \
        and info.get("output_cost_per_token") is not None


def cost_usd(model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float | None:
    """USD for one call from the map's per-token prices, or None when ``model`` has no price.

    ``input_tokens`` counts all prompt tokens, ``cached_tokens`` the part of them read from the
    provider's prompt cache (priced at ``cache_read_input_token_cost`` when listed). Long-prompt
    tiers (``*_above_<N>k_tokens``) apply when the prompt has more than N thousand tokens. This is
    the arithmetic litellm's cost calculator does for chat models priced per token (litellm docs,
    "Custom pricing").
    """
    info = model_info(model)
    if not info or info.get("input_cost_per_token") is None or info.get("output_cost_per_token") is None:
        return None
    suffix = ""
    tiers = sorted((int(m.group(1)) for key in info if (m := _TIER.match(key))), reverse=True)
    for tier in tiers:
        if input_tokens > tier * 1000:
            suffix = f"_above_{tier}k_tokens"
            break

    def price(key: str, fallback: float) -> float:
        value = info.get(key + suffix) if suffix else None
        value = info.get(key) if value is None else value
        return float(fallback if value is None else value)

    per_input = price("input_cost_per_token", 0.0)
    per_cached = price("cache_read_input_token_cost", per_input)
    per_output = price("output_cost_per_token", 0.0)
    cached = min(max(0, cached_tokens), max(0, input_tokens))
    return (input_tokens - cached) * per_input + cached * per_cached + output_tokens * per_output
