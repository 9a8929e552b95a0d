"""``config.toml``: the user's defaults for ``rlm ask``, read with :mod:`tomllib`, edited with tomlkit.

The file lives in :func:`rlm_cli.settings.paths.config_dir` (``$RLM_HOME`` or platformdirs' user config
directory for ``rlm``). It holds flat keys (:data:`KEYS`) and three tables::

    model = "openai/gpt-5"
    sub_model = "fast"            # an alias, expanded when the run starts
    max_cost = 0.5

    [aliases]                     # name -> litellm model string
    fast = "openai/gpt-5-mini"

    [aliases.worker]              # an alias with its own endpoint and key variable
    model = "hosted_vllm/qwen3-8b"
    api_base = "http://127.0.0.1:8001/v1"
    api_key_env = "WORKER_API_KEY"   # optional: the variable holding the key (never the key itself)

    [options]                     # litellm keyword arguments for the root LM
    temperature = 0.2

    [sub_options]                 # ... and for sub-calls
    reasoning_effort = "low"

Any problem (bad TOML, unknown key, wrong type, value out of range) is a one-line
:class:`~rlm_cli.errors.UsageError` (exit 2) naming the file and the key. ``rlm config set`` and
``unset`` edit the file in place with tomlkit (imported only by them): the user's comments, blank
lines, key order and formatting are kept; a new flat key goes after the last flat key, a new table
entry at the end of its table.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.atomic import atomic_write_text
from rlm_cli.errors import UsageError

CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class Key:
    """One flat configuration key: its value type (``str``, ``int`` or ``float``), lower bound, help."""

    name: str
    kind: type
    minimum: float | None
    help: str

    @property
    def env(self) -> str:
        """The environment variable that sets it (``RLM_`` + the key in upper case)."""
        return "RLM_" + self.name.upper()


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("model", str, None, "root LM, a litellm model string or an alias"),
    Key("sub_model", str, None, "sub-LM for llm_query (default: the root model)"),
    Key("api_base", str, None, "base URL of an OpenAI-compatible server (the root LM's; other models' by default)"),
    Key("sub_api_base", str, None, "base URL of the sub-LM's server (default: api_base)"),
    Key("max_iterations", int, 1, "root LM calls before a last best-answer call"),
    Key("max_depth", int, 0, "recursion depth for rlm_query"),
    Key("max_sub_calls", int, 0, "sub-calls over all depths (hard limit)"),
    Key("max_cost", float, 0, "USD over all LM calls (hard limit)"),
    Key("max_tokens", int, 1, "input + output tokens over all LM calls (hard limit)"),
    Key("timeout", float, 0.1, "seconds for the whole run (hard limit)"),
    Key("step_timeout", float, 0.1, "seconds one REPL step may run"),
    Key("concurrency", int, 1, "LM calls in flight at once"),
    Key("sandbox_warning", str, None, "off: the weaker-sandbox warning is acknowledged, do not repeat it"),
    Key("max_retries", int, 0, "retries of one LM request after a rate limit (429) or server error (5xx)"),
    Key("mode", str, None, "auto (one direct call when the input fits the root window), rlm or direct"),
)}
CHOICES = {"mode": ("auto", "rlm", "direct")}
"""String keys that take one of a few values."""
URL_KEYS = frozenset({"api_base", "sub_api_base"})
ALIAS_FIELDS = ("model", "api_base", "api_key_env")
"""Fields of an ``[aliases.NAME]`` table: ``model`` (required), ``api_base``, ``api_key_env``."""
TABLES = ("aliases", "options", "sub_options")
RESERVED_OPTIONS = frozenset({"model", "messages", "stream", "stream_options"})
"""litellm arguments rlm sets itself: an ``-o``/``[options]`` entry may not override them."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number"}


@dataclass
class Config:
    """The parsed, validated ``config.toml`` (empty when the file does not exist)."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_endpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    sub_options: dict[str, Any] = field(default_factory=dict)
    exists: bool = False

    def as_toml_dict(self) -> dict[str, Any]:
        """The document as a plain dict in file order: flat keys, then the non-empty tables."""
        doc: dict[str, Any] = {k: self.values[k] for k in KEYS if k in self.values}
        for table in TABLES:
            if getattr(self, table):
                doc[table] = dict(getattr(self, table))
        for name, extra in self.alias_endpoints.items():  # [aliases.NAME] tables stay tables
            doc["aliases"][name] = {"model": self.aliases[name], **extra}
        return doc


def config_file() -> Path:
    """Path of ``config.toml`` (it may not exist yet)."""
    from rlm_cli.settings.paths import config_dir

    return config_dir() / CONFIG_NAME


def load_config(path: Path | None = None) -> Config:
    """Read and validate ``config.toml``; a missing file is an empty :class:`Config`.

    Raises :class:`UsageError` naming the file and key for unreadable files, bad TOML, unknown keys,
    wrong types and out-of-range values.
    """
    path = path or config_file()
    raw = _read_raw(path)
    if raw is None:
        return Config(path=path)
    return validate(raw, path)


def _read_raw(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from exc


def validate(raw: dict[str, Any], path: Path) -> Config:
    """Check a parsed TOML document against :data:`KEYS` and :data:`TABLES`; returns a :class:`Config`."""
    cfg = Config(path=path, exists=True)
    for name, value in raw.items():
        if name in KEYS:
            cfg.values[name] = check_value(KEYS[name], value, where=f"{path}: key '{name}'")
        elif name in TABLES:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: '{name}' must be a table ([{name}]), got {_describe(value)}")
            for sub, item in value.items():
                where = f"{path}: key '{name}.{sub}'"
                if name == "aliases":
                    cfg.aliases[sub], endpoint = _check_alias(item, where)
                    if endpoint:
                        cfg.alias_endpoints[sub] = endpoint
                else:
                    _check_option(sub, item, where)
                    getattr(cfg, name)[sub] = item
        else:
            raise UsageError(f"{path}: unknown key '{name}'{_suggest(name)}")
    return cfg


def _check_alias(item: Any, where: str) -> tuple[str, dict[str, str]]:
    """An ``[aliases]`` entry: a model string, or a table of :data:`ALIAS_FIELDS`. Returns the model
    and the endpoint fields given (``{"api_base"?, "api_key_env"?}``); raises :class:`UsageError`."""
    if isinstance(item, str) and item.strip():
        return item.strip(), {}
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be a model string or a table with model, api_base, api_key_env, "
                         f"got {_describe(item)}")
    unknown = [k for k in item if k not in ALIAS_FIELDS]
    if unknown:
        raise UsageError(f"{where}: unknown field '{unknown[0]}' (known: {', '.join(ALIAS_FIELDS)})")
    for k, v in item.items():
        if not isinstance(v, str) or not v.strip():
            raise UsageError(f"{where}.{k} must be a non-empty string, got {_describe(v)}")
    if "model" not in item:
        raise UsageError(f"{where} needs a model, e.g. model = \"hosted_vllm/qwen3-8b\"")
    endpoint = {k: item[k].strip() for k in ("api_base", "api_key_env") if k in item}
    if "api_base" in endpoint:
        check_value(KEYS["api_base"], endpoint["api_base"], f"{where}.api_base")
    env_name = endpoint.get("api_key_env")
    if env_name is not None and not _ENV_NAME.match(env_name):
        raise UsageError(f"{where}.api_key_env must name an environment variable (letters, digits, _), "
                         f"got {env_name[:60]!r}; put the key itself in that variable, never in the file")
    return item["model"].strip(), endpoint


def check_value(key: Key, value: Any, where: str) -> Any:
    """``value`` checked against ``key``'s type and lower bound (ints accepted for floats; floats must
    be finite: nan and inf are refused). Raises :class:`UsageError` naming ``where``."""
    ok = (isinstance(value, str) if key.kind is str else
          isinstance(value, int) and not isinstance(value, bool) if key.kind is int else
          isinstance(value, int | float) and not isinstance(value, bool))
    if not ok:
        raise UsageError(f"{where} must be {_KIND_NAMES[key.kind]}, got {_describe(value)}")
    if key.kind is str:
        value = value.strip()
        if not value:
            raise UsageError(f"{where} must not be empty")
        if key.name in URL_KEYS and not value.startswith(("http://", "https://")):
            raise UsageError(f"{where} must be an http:// or https:// URL, got {value!r}")
        if key.name in CHOICES and value not in CHOICES[key.name]:
            raise UsageError(f"{where} must be one of {', '.join(CHOICES[key.name])}, got {value!r}")
        return value
    if key.kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {value!r}")
    if key.minimum is not None and value < key.minimum:
        raise UsageError(f"{where} must be >= {key.minimum:g}, got {value!r}")
    return value


def convert(key: Key, text: str, where: str) -> Any:
    """Parse command-line or environment text for ``key`` (``"0.5"`` -> 0.5), then :func:`check_value`."""
    text = text.strip()
    if key.kind is str:
        return check_value(key, text, where)
    try:
        value: Any = key.kind(text)
    except ValueError:
        raise UsageError(f"{where} must be {_KIND_NAMES[key.kind]}, got {text!r}") from None
    return check_value(key, value, where)


def parse_option_value(text: str) -> Any:
    """An ``-o`` value: JSON when it parses (``0.2``, ``true``, ``{"type": "json_object"}``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_option(name: str, value: Any, where: str) -> None:
    if not name.strip() or any(c.isspace() for c in name):
        raise UsageError(f"{where}: an option name must be a non-empty word")
    if name in RESERVED_OPTIONS:
        raise UsageError(f"{where}: '{name}' is set by rlm itself and cannot be overridden")
    if not _tomlable(value):
        raise UsageError(f"{where} must be a string, number, boolean, array or table, got {_describe(value)}")


def _tomlable(value: Any) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_tomlable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _tomlable(v) for k, v in value.items())
    return False


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
    return f"{kind} {text[:40]}"


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, [*KEYS, *TABLES], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} (known keys: {', '.join(KEYS)}; tables: {', '.join(TABLES)})"


# -- editing ------------------------------------------------------------------------------------
def split_key(dotted: str) -> tuple[str | None, str]:
    """``"aliases.fast"`` -> ``("aliases", "fast")``; ``"max_cost"`` -> ``(None, "max_cost")``.

    Raises :class:`UsageError` for names that are neither a key nor ``TABLE.NAME``.
    """
    table, dot, name = dotted.partition(".")
    if dot and table in TABLES and name:
        return table, name
    if not dot and dotted in KEYS:
        return None, dotted
    raise UsageError(f"unknown configuration key '{dotted}'{_suggest(dotted)}; "
                     "table entries are written TABLE.NAME, e.g. aliases.fast")


def set_value(dotted: str, text: str, path: Path | None = None) -> Any:
    """``rlm config set``: store ``text`` (converted to the key's type) under ``dotted``; returns the value.

    The file is edited in place (comments and layout kept). Raises :class:`UsageError` for an unknown
    key, a bad value, or a file that is not valid TOML or fails validation after the change (then the
    file is left as it was)."""
    path = path or config_file()
    table, name = split_key(dotted)
    doc = _read_document(path)
    if table is None:
        value = convert(KEYS[name], text, where=f"{name}")
        _set_flat(doc, name, value)
    else:
        value = text.strip() if table == "aliases" else parse_option_value(text)
        if value is None:
            raise UsageError(f"{dotted}: null cannot be stored in TOML; use `rlm config unset {dotted}`")
        if not isinstance(doc.get(table), dict):
            if table in doc:
                doc.remove(table)
            import tomlkit

            doc.add(table, tomlkit.table())
        doc[table][name] = value
    _write_document(doc, path)
    return value


def unset_value(dotted: str, path: Path | None = None) -> bool:
    """``rlm config unset``: remove ``dotted`` (unknown top-level keys too); False when it was not set.

    Other lines (comments included) are kept. Raises :class:`UsageError` for an unknown key name or a
    file that is not valid TOML."""
    path = path or config_file()
    if _read_raw(path) is None:
        split_key(dotted)
        return False
    doc = _read_document(path)
    table, dot, name = dotted.partition(".")
    if dot and isinstance(doc.get(table), dict) and name in doc[table]:
        del doc[table][name]
    elif not dot and dotted in doc:
        del doc[dotted]
    else:
        split_key(dotted)
        return False
    _write_document(doc, path)
    return True


def _read_document(path: Path):
    """The file as a tomlkit document (comments and layout kept); a new document with :data:`HEADER`
    when it does not exist. Raises :class:`UsageError` for a file :mod:`tomllib` refuses."""
    import tomlkit

    if _read_raw(path) is None:  # checks readability, UTF-8 and TOML with tomllib's messages
        return tomlkit.parse(HEADER)
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except Exception as exc:  # tomlkit.exceptions.ParseError: rare, tomllib accepted the file
        raise UsageError(f"{path}: cannot edit this TOML ({exc}); edit the file by hand") from exc


def _set_flat(doc, name: str, value: Any) -> None:
    """Set top-level key ``name``: replaced in place when present (its comment kept), else inserted
    after the last top-level key (not after comments that introduce the first table)."""
    if name in doc:
        doc[name] = value
        return
    from tomlkit.items import AoT, Table

    body = doc.body
    last = max((i for i, (key, item) in enumerate(body)
                if key is not None and not isinstance(item, Table | AoT)), default=None)
    insert_at = getattr(doc, "_insert_at", None)  # tomlkit has no public insert-at-position
    if last is not None and last + 1 < len(body) and insert_at is not None:
        insert_at(last + 1, name, value)
    else:
        doc.add(name, value)


def _write_document(doc, path: Path) -> None:
    """Validate the edited document and write it atomically; the file is untouched on any error."""
    import tomlkit

    text = tomlkit.dumps(doc)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # never expected: refuse rather than write a broken file
        raise UsageError(f"{path}: the edited file would not be valid TOML ({exc})") from exc
    validate(raw, path)
    atomic_write_text(path, text)


def save_config(cfg: Config) -> None:
    """Write ``cfg`` as a fresh file (:func:`dumps`; nothing of an existing file is kept) atomically
    (temporary file + rename) to ``cfg.path``, creating its directory."""
    atomic_write_text(cfg.path, dumps(cfg.as_toml_dict()))


HEADER = "# rlm configuration: edit by hand or with `rlm config set KEY VALUE` (which keeps comments).\n"


def dumps(doc: dict[str, Any]) -> str:
    """TOML text for ``doc`` (plain values; dicts become ``[table]``s) after :data:`HEADER`, written by
    tomlkit. Raises TypeError/ValueError for values TOML cannot hold (None, objects)."""
    import tomlkit

    return HEADER + tomlkit.dumps(doc)
