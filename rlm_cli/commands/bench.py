"""``rlm bench SUITE...``: generated long-context suites, ``rlm`` against the bare model (``base``).

Parses the options, generates the tasks from the seed (:mod:`rlm_cli.bench`), runs them
(:func:`rlm_cli.bench.runner.run_bench`) under signal handling, and prints the table (stdout), or
one JSON object with ``--json``; ``--html PATH`` also writes the report page. Exit codes: 0 when the
bench ran (whatever the scores), 2 for usage errors, 130 interrupted (the partial table is printed).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from rlm_cli.commands.options import (
    BUDGET,
    MODEL,
    OUTPUT,
    BudgetOptions,
    ModelOptions,
    OutputOptions,
    option_groups,
)
from rlm_cli.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError

HELP = ("Run generated long-context suites (niah, oolong, pairs, codeqa, stdlib) through rlm and through the bare "
        "root model (base), side by side: accuracy, cost, tokens, time and sub-calls per suite and length. "
        "Tasks are generated from --seed (nothing is downloaded); every task's trajectory is saved.")
EPILOG = "Exit codes: 0 the bench ran (whatever the scores); 1 runtime error; 2 usage error; 130 interrupted."


def _systems(text: str) -> list[str]:
    from rlm_cli.bench.runner import SYSTEMS

    out = list(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    bad = [s for s in out if s not in SYSTEMS]
    if bad or not out:
        raise UsageError(f"--systems: expected a comma-separated list of {', '.join(SYSTEMS)}, got {text!r}")
    return out


def _depths(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        out = [float(d) for d in text.split(",") if d.strip()]
    except ValueError:
        out = []
    if not out or not all(math.isfinite(d) and 0 <= d <= 1 for d in out):
        raise UsageError(f"--depths: expected fractions between 0 and 1, e.g. 0.1,0.5,0.9, got {text!r}")
    return out


@option_groups(model=MODEL, budget=BUDGET.without("concurrency", "repl_network"), output=OUTPUT)
def bench_command(
    suites: list[str] = typer.Argument(..., metavar="SUITE...", help="niah, oolong, pairs, codeqa, stdlib (or a comma list)."),
    n: int = typer.Option(3, "--n", min=1, help="Tasks per suite and length."),
    lengths: str = typer.Option("8k,64k", "--lengths", metavar="L,L,...",
                                help="Input sizes in characters (k = 1,000, m = 1,000,000), e.g. 8000,64k,1m."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated tasks (same seed, same tasks)."),
    depths: str = typer.Option(None, "--depths", metavar="D,D,...",
                               help="niah needle depths (fractions 0-1), cycled over the tasks (default: from the seed)."),
    systems: str = typer.Option("rlm,base", "--systems", help="Systems to run: rlm, base, or both."),
    concurrency: int = typer.Option(1, "--concurrency", min=1,
                                    help="Tasks run at once (a local llama.cpp server answers one request at a time)."),
    lm_concurrency: int = typer.Option(None, "--lm-concurrency", min=1,
                                       help="LM calls in flight within one rlm run (rlm ask's --concurrency)."),
    context_window: int = typer.Option(None, "--context-window", metavar="TOKENS", min=256,
                                       help="The root model's context window for base (default: the model "
                                       "catalogue's; needed for local models)."),
    out: Path = typer.Option(None, "--out", help="Directory for the trajectories (<task>-<system>.json; "
                             "default: the log directory)."),
    html: Path = typer.Option(None, "--html", metavar="PATH", help="Also write a self-contained HTML report."),
    *, model: ModelOptions, budget: BudgetOptions, output: OutputOptions,
) -> None:
    from rlm_cli.bench.tasks import parse_lengths, parse_suites

    suite_names = parse_suites(suites)
    length_list = parse_lengths(lengths)
    system_list = _systems(systems)
    depth_list = _depths(depths)
    total = len(suite_names) * len(length_list) * n
    from rlm_cli.bench.tasks import MAX_TASKS

    if total > MAX_TASKS:
        raise UsageError(f"{total:,} tasks asked for; at most {MAX_TASKS:,} (lower --n or --lengths)")
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    from rlm_cli.commands.options import resolve_settings

    settings = resolve_settings(model, budget, concurrency=lm_concurrency)
    window = None
    if "base" in system_list:
        from rlm_cli.bench.base import resolve_window

        window = resolve_window(settings.model, context_window)
        if window is None:
            raise UsageError(f"base needs the context window of {settings.model}, which the model catalogue does "
                             "not list: pass --context-window TOKENS (or --systems rlm)")
    from rlm_cli.bench.runner import BenchConfig, plan

    cfg = BenchConfig(systems=system_list, settings=settings, limits=settings.limits(max_output_chars=budget.max_output_chars),
                      concurrency=concurrency, window_tokens=window,
                      out_dir=out.resolve() if out is not None else None, request_timeout=model.request_timeout,
                      system_extra=model.system)
    meta = {"seed": seed, "n": n, "lengths": length_list, "suites": suite_names, "systems_run": system_list,
            "models": {"root": settings.model, "sub": settings.sub_model or settings.model},
            "context_window": window, "limits": cfg.limits.as_dict()}
    html_path = html.resolve() if html is not None else None
    code = run_bench_command(cfg, plan(suite_names, length_list, n, seed, depth_list), meta,
                             as_json=output.as_json, html=html_path, quiet=output.quiet)
    raise typer.Exit(code)


def run_bench_command(cfg, specs, meta: dict, *, as_json: bool, html: Path | None, quiet: bool) -> int:
    """Run the bench with signal handling and print the outcome; returns the exit code (0, or 130
    when interrupted after printing the partial table)."""
    from rlm_cli.bench.progress import BenchProgress
    from rlm_cli.bench.report import bench_doc, print_table
    from rlm_cli.bench.runner import run_bench
    from rlm_cli.run.interrupts import run_until_signal
    from rlm_cli.view.safe import inline, json_text

    results: list = []
    progress = BenchProgress(len(specs) * len(cfg.systems), kind="quiet" if quiet else None)
    signals: list[int] = []
    try:
        done = run_until_signal(run_bench(cfg, specs, results, progress.update), signals)
    finally:
        progress.close()
    interrupted = done is None
    doc = bench_doc(results, systems=cfg.systems, meta=meta, interrupted=interrupted)
    if as_json:
        sys.stdout.write(json_text(doc) + "\n")
    else:
        print_table(doc)
    sys.stdout.flush()
    failed = [r for r in results if r.status == "error"]
    if failed:
        print(f"rlm: warning: {len(failed)} of {len(results)} runs failed (scored 0); first: "
              f"{failed[0].task_id} {failed[0].system}: {inline(failed[0].error, 300)}", file=sys.stderr)
    if html is not None:
        from rlm_cli.bench.html import write_report

        try:
            write_report(doc, html)
        except OSError as exc:
            print(f"rlm: warning: could not write the HTML report: {inline(exc)}", file=sys.stderr)
        else:
            if not quiet:
                print(f"rlm: report: {inline(html)}", file=sys.stderr)
    if not quiet and not as_json:
        where = cfg.out_dir if cfg.out_dir is not None else "the log directory (rlm logs)"
        print(f"rlm: trajectories: {inline(where)}", file=sys.stderr)
    if interrupted:
        print("rlm: interrupted", file=sys.stderr)
        return 128 + signals[0] if signals else EXIT_INTERRUPTED
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Add ``rlm bench`` to ``app``."""
    from rlm_cli.commands.options import SETTINGS_HELP, AskCommand

    app.command("bench", help=HELP, epilog=EPILOG + "\n\n" + SETTINGS_HELP, cls=AskCommand)(bench_command)
