"""The ``oolong`` suite: aggregation over many labelled records (OOLONG-style).

The input is ``records.txt``: one record per line (:mod:`rlm_cli.bench.records`), five to eight labels
drawn with uneven weights. One question per task, of one of four kinds:

- ``count``: how many records carry label X (scored ``numeric``: ``0.75 ** |y - y_hat|``);
- ``most`` / ``least``: which label is the most / least frequent (``label``; asked only when it is
  unique, else the task asks a count);
- ``compare``: are there more, fewer or the same number of records labelled X as Y (``label`` over
  ``more``, ``fewer``, ``same``).
"""

from __future__ import annotations

from collections import Counter

from rlm_cli.bench.records import LABELS, record, records_for, user_ids
from rlm_cli.bench.tasks import Task, task_rng

FILE = "records.txt"
KINDS = ("count", "most", "least", "compare")


def generate(length: int, index: int, seed: int) -> Task:
    """The oolong task ``index`` of ``length`` characters for ``seed``."""
    rng = task_rng("oolong", length, index, seed)
    labels = rng.sample(LABELS, rng.randint(5, 8))
    weights = [rng.uniform(0.3, 3.0) for _ in labels]
    users = user_ids(rng, min(9000, max(5, records_for(length) // 4)))
    lines: list[str] = []
    used = 0
    while True:
        line = record(rng, len(lines) + 1, rng.choice(users), rng.choices(labels, weights)[0])
        if used + len(line) + 1 > length:
            break
        lines.append(line)
        used += len(line) + 1
    counts = Counter(line.split(" | label: ", 1)[1].split(" | ", 1)[0] for line in lines)
    full = {label: counts.get(label, 0) for label in labels}
    ranked = sorted(full.items(), key=lambda kv: kv[1])
    kind = rng.choice(KINDS)
    if kind == "most" and ranked[-1][1] == ranked[-2][1] or kind == "least" and ranked[0][1] == ranked[1][1]:
        kind = "count"
    listed = ", ".join(sorted(labels))
    if kind == "count":
        label = rng.choice(labels)
        question = (f"How many records have the label '{label}'? Answer with a number.")
        expected, score_kind, choices = str(full[label]), "numeric", ()
    elif kind in ("most", "least"):
        which = "most" if kind == "most" else "least"
        question = (f"Which label is the {which} frequent among the records? The labels are: {listed}. "
                    "Answer with the label only.")
        expected = ranked[-1][0] if kind == "most" else ranked[0][0]
        score_kind, choices = "label", tuple(labels)
    else:
        a, b = rng.sample(labels, 2)
        question = (f"Are there more, fewer or the same number of records labelled '{a}' compared with '{b}'? "
                    "Answer with one word: more, fewer or same.")
        expected = "more" if full[a] > full[b] else "fewer" if full[a] < full[b] else "same"
        score_kind, choices = "label", ("more", "fewer", "same")
    return Task(suite="oolong", length=length, index=index, seed=seed, question=question, expected=expected,
                kind=score_kind, files={FILE: "\n".join(lines) + "\n"}, choices=choices,
                meta={"question_kind": kind, "records": len(lines)})
