"""What the answer must look like: ``response_format`` (JSON, a JSON Schema), ``stop`` and ``max_tokens``.

Before the run, :func:`instructions` tells the root LM the format and length asked for. After it,
:func:`check_json` validates the answer for ``json_object`` / ``json_schema`` (with the
``jsonschema`` package, which the lock file brings with litellm; without it, the schema's
top-level ``type`` and ``required`` keys are checked) and :func:`repair` asks the root LM once to
fix an answer that fails. :func:`shape` then cuts the answer at the first ``stop`` sequence and at
``max_tokens`` tokens (counted with the ``cl100k_base`` tokenizer litellm ships, an estimate for
other models; 4 characters a token when it cannot be loaded), saying ``length`` when it cut.
"""

from __future__ import annotations

import json
import re
from typing import Any

CHARS_PER_TOKEN = 4
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def instructions(response_format: dict | None, max_tokens: int | None) -> str:
    """Extra root instructions for the requested answer shape ("" when none)."""
    lines = []
    if response_format is not None:
        if response_format["type"] == "json_schema":
            schema = json.dumps(response_format.get("schema") or {}, ensure_ascii=False)
            lines.append("The final answer must be one JSON value that validates against this JSON Schema, "
                         f"with no text around it: {schema}")
        else:
            lines.append("The final answer must be one JSON object, with no text around it.")
    if max_tokens is not None:
        lines.append(f"Keep the final answer under {max_tokens} tokens (about {max_tokens * CHARS_PER_TOKEN} "
                     "characters): a longer one is cut.")
    return "\n".join(lines)


def check_json(text: str, response_format: dict) -> tuple[str, str | None]:
    """``(answer, error)``: the answer as JSON text (a surrounding ```json fence removed) and None
    when it satisfies ``response_format``, else the original text and a one-line reason."""
    match = _FENCE.match(text)
    candidate = match.group(1) if match else text.strip()
    try:
        value = json.loads(candidate)
    except (ValueError, RecursionError) as exc:
        return text, f"not valid JSON ({str(exc)[:120]})"
    if response_format["type"] == "json_object":
        return (candidate, None) if isinstance(value, dict) else (text, "not a JSON object")
    error = schema_error(value, response_format.get("schema") or {})
    return (candidate, None) if error is None else (text, error)


def schema_error(value: Any, schema: dict) -> str | None:
    """Why ``value`` does not validate against ``schema`` (one line), or None when it does. Uses
    ``jsonschema`` (remote ``$ref`` never fetched); without it, checks the top-level ``type``
    (object/array/string/number/integer/boolean) and an object's ``required`` keys."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the lock file brings it
        return _simple_error(value, schema)
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the request's JSON Schema is invalid: {exc.message[:200]}"
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - an unresolvable $ref, a bad pattern
        return f"the JSON Schema could not be applied ({type(exc).__name__})"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"does not match the schema at {where}: {error.message[:200]}"


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float), "integer": int}


def _simple_error(value: Any, schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _TYPES:
        ok = isinstance(value, _TYPES[kind]) and not (kind in ("number", "integer") and isinstance(value, bool))
        if not ok:
            return f"not of type {kind}"
    if isinstance(value, dict):
        missing = [k for k in schema.get("required") or [] if isinstance(k, str) and k not in value]
        if missing:
            return f"missing required key(s): {', '.join(missing[:10])}"
    return None


def repair_messages(answer: str, response_format: dict, error: str) -> list[dict]:
    """The one repair turn's messages to the root LM: the answer, what is wrong, the schema."""
    want = ("one JSON object" if response_format["type"] == "json_object" else
            "one JSON value valid against this JSON Schema: " + json.dumps(response_format.get("schema") or {}))
    return [{"role": "system", "content": "You rewrite answers into the exact JSON format asked for. Reply with "
             "the JSON only: no explanation, no code fence."},
            {"role": "user", "content": f"This answer must be {want}\nIt is wrong: {error}\n\nThe answer:\n{answer}"}]


_ENCODING: list[Any] = []


def _encoding() -> Any:
    """tiktoken's ``cl100k_base`` from the files litellm ships (never downloaded: without them, None).
    litellm itself is not imported (its import may fetch its price map)."""
    if _ENCODING:
        return _ENCODING[0]
    enc = None
    try:
        import importlib.util
        import os
        from pathlib import Path

        spec = importlib.util.find_spec("litellm")
        folder = Path(list(spec.submodule_search_locations or [])[0]) / "litellm_core_utils" / "tokenizers"
        if folder.is_dir():
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))  # what litellm's own import sets
            if Path(os.environ["TIKTOKEN_CACHE_DIR"]) == folder:
                import tiktoken

                enc = tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - any import or file problem: estimate instead
        enc = None
    _ENCODING.append(enc)
    return enc


def cut_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_tokens`` tokens; ``(text, True)`` when it was cut."""
    if len(text) <= max_tokens:  # no tokenizer yields fewer than one character per token... nearly
        return text, False
    enc = _encoding()
    if enc is None:
        limit = max_tokens * CHARS_PER_TOKEN
        return (text[:limit], True) if len(text) > limit else (text, False)
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text, False
    return enc.decode(tokens[:max_tokens]).rstrip("\ufffd"), True


def shape(answer: str, stop: list[str], max_tokens: int | None) -> tuple[str, bool]:
    """The answer cut at the first of the ``stop`` sequences, then to ``max_tokens`` tokens;
    ``(answer, cut_for_length)``."""
    for seq in stop:
        at = answer.find(seq)
        if at >= 0:
            answer = answer[:at]
    if max_tokens is None:
        return answer, False
    return cut_tokens(answer, max_tokens)
