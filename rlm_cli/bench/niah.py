"""The ``niah`` suite: one needle in a haystack of log lines and prose, with decoys.

The needle is ``The access code for the <colour> <animal> vault is NNNN-NNNN.`` at a chosen depth;
decoys look alike but differ in the key phrase: the same vault with another kind of code (``backup
code``), or another vault with an access code. The question asks for the needle's code; scored by
the ``token`` rule (:mod:`rlm_cli.bench.scoring`): the code appears in the answer, no decoy code does.
"""

from __future__ import annotations

import random

from rlm_cli.bench.filler import filler_lines
from rlm_cli.bench.tasks import Task, task_rng

COLOURS = ("amber", "cobalt", "crimson", "emerald", "ivory", "jade", "indigo", "scarlet", "silver", "violet",
           "copper", "ochre", "teal", "saffron")
ANIMALS = ("heron", "otter", "falcon", "lynx", "badger", "walrus", "gecko", "marten", "ibis", "jackal",
           "osprey", "tapir", "wombat", "yak")
OTHER_CODES = ("backup code", "access key", "door code", "reset code")
FILE = "haystack.txt"


def _code(rng: random.Random, taken: set[str]) -> str:
    while True:
        code = f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        if code not in taken:
            taken.add(code)
            return code


def generate(length: int, index: int, seed: int, depth: float | None = None) -> Task:
    """The niah task ``index`` of ``length`` characters for ``seed``; ``depth`` (0-1, fraction of the
    haystack's lines before the needle) is drawn from the task's generator when None."""
    rng = task_rng("niah", length, index, seed)
    colour, animal = rng.choice(COLOURS), rng.choice(ANIMALS)
    taken: set[str] = set()
    code = _code(rng, taken)
    needle = f"The access code for the {colour} {animal} vault is {code}."
    decoys: list[str] = []
    decoy_codes: list[str] = []
    for _ in range(rng.randint(2, 4)):
        other = _code(rng, taken)
        if rng.random() < 0.5:
            decoys.append(f"The {rng.choice(OTHER_CODES)} for the {colour} {animal} vault is {other}.")
        else:
            vault = (rng.choice([c for c in COLOURS if c != colour]), rng.choice(ANIMALS))
            decoys.append(f"The access code for the {vault[0]} {vault[1]} vault is {other}.")
        decoy_codes.append(other)
    depth = rng.uniform(0.05, 0.95) if depth is None else min(1.0, max(0.0, float(depth)))
    fixed = len(needle) + 1 + sum(len(d) + 1 for d in decoys)
    lines = filler_lines(rng, max(0, length - fixed))
    at = round(depth * len(lines))
    for decoy in decoys:  # anywhere but next to the needle's position
        spots = [i for i in range(len(lines) + 1) if abs(i - at) > 2] or [len(lines)]
        lines.insert(rng.choice(spots), decoy)
        if lines.index(decoy) <= at:
            at += 1
    lines.insert(at, needle)
    question = (f"What is the access code for the {colour} {animal} vault? "
                "Answer with the code only.")
    return Task(suite="niah", length=length, index=index, seed=seed, question=question, expected=code,
                kind="token", files={FILE: "\n".join(lines) + "\n"}, decoys=tuple(decoy_codes),
                meta={"depth": round(depth, 3), "needle_line": at + 1})
