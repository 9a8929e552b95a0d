"""The ``pairs`` suite: a question whose answer is a set of pairs (OOLONG-Pairs-style).

The input is ``records.txt`` (:mod:`rlm_cli.bench.records`). One label is rare: only three to six
users have records with it (one to three each; one below 20,000 characters). The question asks for every pair of distinct users
who both have a record with that label; the answer is every pair of those users (3 to 15 pairs),
scored by F1 over unordered pairs (the ``pairs`` rule of :mod:`rlm_cli.bench.scoring`).
"""

from __future__ import annotations

from itertools import combinations

from rlm_cli.bench.records import LABELS, record, records_for, user_ids
from rlm_cli.bench.tasks import Task, task_rng

FILE = "records.txt"


def generate(length: int, index: int, seed: int) -> Task:
    """The pairs task ``index`` of ``length`` characters for ``seed``."""
    rng = task_rng("pairs", length, index, seed)
    labels = rng.sample(LABELS, rng.randint(5, 8))
    rare, common = labels[0], labels[1:]
    users = user_ids(rng, min(9000, max(12, records_for(length) // 4)))
    holders = sorted(rng.sample(users, rng.randint(3, 6)))
    most = 1 if length < 20_000 else 3
    special = [record(rng, 0, h, rare) for h in holders for _ in range(rng.randint(1, most))]
    special_chars = sum(len(line) + 2 for line in special)  # +1: a wider number after renumbering
    lines: list[str] = []
    used = 0
    while True:
        line = record(rng, 0, rng.choice(users), rng.choice(common))
        if used + len(line) + 1 > length - special_chars:
            break
        lines.append(line)
        used += len(line) + 1
    for line in special:
        lines.insert(rng.randint(0, len(lines)), line)
    lines = [f"[#{i + 1:05d}]" + line[8:] for i, line in enumerate(lines)]  # number them in order
    expected = [list(p) for p in combinations(holders, 2)]
    question = (f"List every pair of distinct users who both have at least one record labelled '{rare}'. "
                "Give each pair as (user, user), for example (u1234, u5678), one pair per line.")
    return Task(suite="pairs", length=length, index=index, seed=seed, question=question, expected=expected,
                kind="pairs", files={FILE: "\n".join(lines) + "\n"}, meta={"users": holders, "label": rare})
