"""``rlm config path|show|get|set|unset``: the configuration file and where each value comes from."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

HELP = ("Show or change the configuration (config.toml). Precedence: command-line flag > environment "
        "(RLM_MODEL, RLM_MAX_COST, ... RLM_<KEY>) > config file > built-in default.")

KEYS_HELP = ("Keys: model, sub_model, api_base, sub_api_base, max_iterations, max_depth, max_sub_calls, max_cost, "
             "max_tokens, timeout, step_timeout, concurrency, max_retries, sandbox_warning (off: do not warn "
             "about a weaker REPL sandbox); table entries: aliases.NAME (a model "
             "string; [aliases.NAME] tables with model, api_base, api_key_env are edited by hand), "
             "options.NAME and sub_options.NAME (litellm arguments for the root LM and for sub-calls; "
             "values parsed as JSON when they can be).")

config_app = typer.Typer(help=HELP, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


@config_app.command("path")
def path_command() -> None:
    """Print the path of config.toml (it may not exist yet)."""
    from rlm_cli.settings.config_file import config_file

    print(config_file())


@config_app.command("show")
def show_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (schema rlm-config/1).")] = False,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Do not look for local model servers.")] = False,
) -> None:
    """Print every setting, its value and where it came from (env, config, default or auto)."""
    from rlm_cli.secrets import redact, redact_obj, remember_options
    from rlm_cli.settings.config_file import KEYS, load_config
    from rlm_cli.settings.resolve import resolve

    cfg = load_config()
    s = resolve({}, config=cfg, probe=not no_probe, require_model=False)
    remember_options(cfg.options)
    remember_options(cfg.sub_options)
    if as_json:
        doc = {"schema": "rlm-config/1", "path": str(cfg.path), "exists": cfg.exists,
               "values": {k: {"value": s.value(k), "source": s.sources[k], "detail": s.notes[k]} for k in KEYS},
               "aliases": cfg.aliases, "options": cfg.options, "sub_options": cfg.sub_options}
        doc = redact_obj(doc)  # keys set in the config file or the environment are never printed
        from rlm_cli.view.safe import json_text

        sys.stdout.write(json_text(doc, indent=2) + "\n")
        return
    from rlm_cli.view.safe import inline

    def v(value: object) -> str:  # values from files, env and probed servers: visible, secrets redacted
        return redact(inline(value))

    print(f"# {v(cfg.path)}" + ("" if cfg.exists else " (not created yet)"))
    width = max(len(k) for k in KEYS)
    for k in KEYS:
        value = s.value(k)
        shown = "(none)" if value is None else v(value)
        if value is None and k == "model":
            shown = "(none: `rlm ask` will fail; see `rlm models`)"
        print(f"{k:<{width}}  {shown:<32}  {v(s.sources[k])}: {v(s.notes[k])}")
    for table in ("aliases", "options", "sub_options"):
        items = getattr(cfg, table)
        if items:
            print(f"\n[{table}]")
            for name, value in items.items():
                print(f"{v(name)} = {redact(_show(value))}")


def _show(value: Any) -> str:
    """``value`` for a human: a string as itself, anything else as JSON; control characters made
    visible either way (:func:`rlm_cli.view.safe.inline`)."""
    from rlm_cli.view.safe import inline

    return inline(value if isinstance(value, str) else json.dumps(value))


@config_app.command("get", epilog=KEYS_HELP)
def get_command(
    key: Annotated[str, typer.Argument(help="A key, or TABLE.NAME (aliases.fast, options.temperature).")],
) -> None:
    """Print KEY's value as rlm would use it (flag aside: environment > config file > default), alone on
    one line, for scripts: `$(rlm config get model)`. A key with no value prints nothing (exit 0)."""
    from rlm_cli.secrets import redact, remember_options
    from rlm_cli.settings.config_file import load_config, split_key
    from rlm_cli.settings.resolve import resolve

    table, name = split_key(key)  # an unknown key: a usage error (exit 2) naming the known ones
    cfg = load_config()
    remember_options(cfg.options)
    remember_options(cfg.sub_options)
    if table is None:
        value = resolve({}, config=cfg, probe=False, require_model=False).value(name)
    else:
        value = getattr(cfg, table).get(name)
    if value is None:
        from rlm_cli.view.safe import inline

        print(f"rlm: {inline(key)} is not set", file=sys.stderr)
        return
    from rlm_cli.view.pipe import stdout_may_close

    with stdout_may_close():
        print(redact(_show(value)))  # secrets (keys set in the environment or the config) stay hidden


@config_app.command("set", epilog=KEYS_HELP)
def set_command(
    key: Annotated[str, typer.Argument(help="A key, or TABLE.NAME (aliases.fast, options.temperature).")],
    value: Annotated[str, typer.Argument(help="The value (converted to the key's type).")],
) -> None:
    """Set KEY to VALUE in config.toml (the file is rewritten; comments are not kept)."""
    from rlm_cli.settings.config_file import config_file, set_value

    stored = set_value(key, value)
    from rlm_cli.view.safe import inline

    print(f"rlm: {inline(key)} = {_show(stored)} ({inline(config_file())})", file=sys.stderr)


@config_app.command("unset", epilog=KEYS_HELP)
def unset_command(
    key: Annotated[str, typer.Argument(help="A key, or TABLE.NAME.")],
) -> None:
    """Remove KEY from config.toml (the built-in default applies again)."""
    from rlm_cli.settings.config_file import unset_value
    from rlm_cli.view.safe import inline

    if unset_value(key):
        print(f"rlm: {inline(key)} removed", file=sys.stderr)
    else:
        print(f"rlm: {inline(key)} was not set", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add ``rlm config`` to the main app."""
    app.add_typer(config_app, name="config", help=HELP)
