"""Bench tasks: what one generated task is, the suites, and parsing ``--lengths`` / suite names.

A :class:`Task` is generated from ``(suite, length, index, seed)`` alone, with its own
:class:`random.Random` (never the global one): the same arguments give a byte-identical task on any
machine and in any order. Its input is ``files`` (relative path -> text), written under a directory
for the ``rlm`` system and concatenated (the loader's format) for the ``base`` system.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import UsageError

MIN_LENGTH = 2_000
"""Smallest task input, in characters."""
MAX_LENGTH = 100_000_000
"""Largest task input, in characters (the loader's default --max-input-size is 200 MB)."""
MAX_TASKS = 10_000
"""Most tasks one bench may generate (suites x lengths x n)."""

_LENGTH_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}


@dataclass(frozen=True)
class Task:
    """One generated bench task.

    ``suite``: its suite name; ``length``: the asked input size in characters (the input is at most
    this long, within a few hundred characters below it); ``index``: its number within (suite,
    length); ``seed``: the bench seed it came from; ``question``: what the systems are asked;
    ``expected``: the answer (``str``, or for ``pairs`` a sorted list of ``[a, b]`` with ``a < b``);
    ``kind``: the scoring rule (see :mod:`rlm_cli.bench.scoring`); ``choices``: for ``label``
    answers, every label that could be answered; ``decoys``: values that look like the answer but
    are wrong; ``files``: relative path -> text (the input); ``meta``: facts for the report (the
    needle's depth, ...)."""

    suite: str
    length: int
    index: int
    seed: int
    question: str
    expected: Any
    kind: str
    files: dict[str, str]
    choices: tuple[str, ...] = ()
    decoys: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``<suite>-<length>-<index>``: unique within one bench."""
        return f"{self.suite}-{self.length}-{self.index}"

    @property
    def chars(self) -> int:
        """Characters of input over all files."""
        return sum(len(t) for t in self.files.values())


def task_rng(suite: str, length: int, index: int, seed: int) -> random.Random:
    """The private random generator of one task (string seeds are hashed with SHA-512 by
    :class:`random.Random`: stable across runs, platforms and Python versions)."""
    return random.Random(f"rlm-bench/1:{suite}:{length}:{index}:{seed}")


def parse_length(text: str) -> int:
    """Characters from ``"8000"``, ``"64k"`` (x 1,000) or ``"1m"`` (x 1,000,000). Raises
    :class:`UsageError` outside [:data:`MIN_LENGTH`, :data:`MAX_LENGTH`] or for anything else."""
    m = _LENGTH_RE.match(text)
    if not m:
        raise UsageError(f"--lengths: not a length: {text!r} (examples: 8000, 64k, 1m)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if not MIN_LENGTH <= value <= MAX_LENGTH:
        raise UsageError(f"--lengths: {text!r} is {value:,} characters; give {MIN_LENGTH:,} to {MAX_LENGTH:,}")
    return value


def parse_lengths(text: str) -> list[int]:
    """Comma-separated lengths (see :func:`parse_length`), duplicates dropped, order kept."""
    items = [t for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError("--lengths: give at least one length, e.g. 8000,64k,1m")
    return list(dict.fromkeys(parse_length(t) for t in items))


def format_length(chars: int) -> str:
    """``8000`` -> ``"8k"``, ``1000000`` -> ``"1m"``, ``12345`` -> ``"12345"`` (reads back with
    :func:`parse_length`)."""
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if chars % size == 0:
            return f"{chars // size}{unit}"
    return str(chars)


def generators() -> dict[str, Callable[..., Task]]:
    """Suite name -> generator ``gen(length, index, seed) -> Task``."""
    import importlib

    return {name: importlib.import_module(f"rlm_cli.bench.{name}").generate for name in SUITES}


SUITES = ("niah", "oolong", "pairs", "codeqa", "stdlib")


def parse_suites(names: list[str]) -> list[str]:
    """Suite names (each may hold commas), duplicates dropped. Raises :class:`UsageError` for an
    unknown one or none."""
    out = [n.strip().lower() for item in names for n in item.split(",") if n.strip()]
    if not out:
        raise UsageError(f"give at least one suite: {', '.join(SUITES)}")
    for name in out:
        if name not in SUITES:
            raise UsageError(f"unknown suite {name!r}: choose from {', '.join(SUITES)}")
    return list(dict.fromkeys(out))
