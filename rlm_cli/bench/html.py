"""The bench's self-contained HTML report: the table per suite, length and system, and per suite an
inline SVG chart of accuracy against input length, one line per system (like the paper's Figure 1).
No external resource (no script, font, style sheet or image is fetched); every text is escaped."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from rlm_cli.bench.report import COLUMNS, table_rows
from rlm_cli.bench.tasks import format_length

COLOURS = {"rlm": "#1f6feb", "base": "#d1242f"}
W, H, PAD = 520, 300, 48

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}th{background:#f6f8fa}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}code{background:#f6f8fa;padding:0 3px}"""


def _e(value: object) -> str:
    """``value`` as HTML text: control characters shown as escapes (``\\x1b``), then HTML-escaped."""
    from rlm_cli.view.safe import inline

    return escape(inline(value), quote=True)


def chart_svg(suite: str, groups: list[dict], systems: list[str]) -> str:
    """An SVG line chart of ``accuracy`` (0-100%) against ``length`` (log scale when the lengths
    span more than 10x) for ``suite``'s groups, one polyline per system of ``systems``."""
    rows = [g for g in groups if g["suite"] == suite and g["accuracy"] is not None]
    lengths = sorted({g["length"] for g in rows})
    if not lengths:
        return ""
    use_log = lengths[-1] > 10 * lengths[0]

    def x(length: int) -> float:
        if len(lengths) == 1:
            return W / 2
        lo, hi = lengths[0], lengths[-1]
        frac = (math.log(length) - math.log(lo)) / (math.log(hi) - math.log(lo)) if use_log \
            else (length - lo) / (hi - lo)
        return PAD + frac * (W - 2 * PAD)

    def y(acc: float) -> float:
        return H - PAD - acc * (H - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
             f'aria-label="accuracy against length, {_e(suite)}">',
             f'<text x="{W / 2}" y="20" text-anchor="middle" font-weight="bold">{_e(suite)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{PAD - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick * 100:.0f}%'
                     f'</text><line x1="{PAD}" y1="{y(tick):.1f}" x2="{W - PAD}" y2="{y(tick):.1f}" stroke="#eee"/>')
    for length in lengths:
        parts.append(f'<text x="{x(length):.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">'
                     f'{_e(format_length(length))}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="11">input length (characters'
                 f'{", log scale" if use_log else ""})</text>')
    for i, system in enumerate(systems):
        pts = [(x(g["length"]), y(g["accuracy"])) for g in sorted(rows, key=lambda g: g["length"])
               if g["system"] == system]
        colour = COLOURS.get(system, "#555")
        if len(pts) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                         + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>' for px, py in pts]
        parts.append(f'<text x="{W - PAD}" y="{PAD + 14 * i}" text-anchor="end" font-size="12" fill="{colour}">'
                     f'{_e(system)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_report(doc: dict) -> str:
    """The report page for a :func:`rlm_cli.bench.report.bench_doc` (a complete HTML document)."""
    systems = list(doc["systems"])
    suites = list(dict.fromkeys(g["suite"] for g in doc["groups"]))
    head = "".join(f"<th>{_e(h)}</th>" for h, _, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in table_rows(doc))
    overall = "".join(f"<li><b>{_e(s)}</b>: accuracy {_e(round((v['accuracy'] or 0) * 100, 1))}% over "
                      f"{_e(v['tasks'])} tasks</li>" for s, v in doc["systems"].items())
    charts = "".join(f"<figure>{chart_svg(s, doc['groups'], systems)}</figure>" for s in suites)
    models = doc.get("models") or {}
    tasks = "".join(
        f"<tr><td>{_e(t['task'])}</td><td>{_e(t['system'])}</td><td>{_e(t['score'])}</td><td>{_e(t['status'])}</td>"
        f"<td>{_e(t['expected'])}</td><td>{_e((t['answer'] or '')[:300])}</td><td>{_e(t['trajectory'] or '-')}</td></tr>"
        for t in doc["tasks"])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>rlm bench</title>'
            f"<style>{STYLE}</style></head><body><h1>rlm bench</h1>"
            f"<p>Status: {_e(doc['status'])}. Seed {_e(doc.get('seed'))}, {_e(doc.get('n'))} tasks per suite and "
            f"length. Root model <code>{_e(models.get('root'))}</code>, sub-model <code>{_e(models.get('sub'))}"
            f"</code>.</p><ul>{overall}</ul><div class=\"charts\">{charts}</div>"
            f"<h2>Per suite and length</h2><table><tr>{head}</tr>{body}</table>"
            "<h2>Tasks</h2><table><tr><th>task</th><th>system</th><th>score</th><th>status</th><th>expected</th>"
            f"<th>answer (first 300 characters)</th><th>trajectory</th></tr>{tasks}</table></body></html>\n")


def write_report(doc: dict, path: Path) -> None:
    """Write :func:`render_report` of ``doc`` to ``path`` atomically. Raises OSError."""
    from rlm_cli.atomic import atomic_write_text

    atomic_write_text(path, render_report(doc))
