"""Scoring a system's answer against a task's expected answer: a score in [0, 1].

Answers are model text (hostile, often chatty): each rule extracts what it needs without
depending on any model's wording. The rules, by :attr:`rlm_cli.bench.tasks.Task.kind`:

- ``token`` (niah): 1 when the expected value occurs in the answer as a whole token (not inside a
  longer run of letters, digits, ``-`` or ``_``) and no decoy value does; else 0.
- ``numeric`` (oolong counts): the last number in the answer is ``y_hat``; the score is
  ``0.75 ** abs(y - y_hat)`` (the paper's OOLONG rule); 0 when the answer has no number.
- ``label`` (oolong labels and comparisons): the answer normalised (lower case, punctuation and
  surrounding space stripped) equals the expected label; failing that, exactly one of the task's
  choices occurs in the answer as a whole word and it is the expected one. Else 0.
- ``pairs`` (pairs): the answer's pairs are every two identifiers joined by a separator of at most
  five characters of space, comma, ``&``, ``-``, ``and``, ``/``, ``:`` or brackets, read in order
  (``(u1, u2)``, ``u1 - u2``, ``u1 and u2``); unordered and de-duplicated. Score: F1 against the
  expected set (1 when both are empty).
- ``name`` (codeqa): 1 when the expected path or name occurs in the answer as a whole token (paths
  may carry a leading directory, e.g. ``repo/src/x.py`` for ``src/x.py``) and no other choice does;
  else 0.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ID = r"\b[A-Za-z]+[_-]?\d+\b"
_PAIR = re.compile(rf"({_ID})(?:\s|,|&|-|/|:|\(|\)|\[|\]|and){{1,5}}?\s*({_ID})")


def normalise(text: str) -> str:
    """Lower case, NFKC, surrounding punctuation, quotes, backticks and space stripped, inner
    whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\s+", " ", text)
    return text.strip(" \t\n.,;:!?\"'`*()[]{}<>")


def token_in(value: str, answer: str, extra: str = "") -> bool:
    """Whether ``value`` occurs in ``answer`` not preceded or followed by a letter, digit, ``-`` or
    ``_`` (or a character of ``extra``); case-insensitive."""
    bound = re.escape("-_" + extra)
    return re.search(rf"(?<![\w{bound}]){re.escape(value)}(?![\w{bound}])", answer, re.IGNORECASE) is not None


def last_number(answer: str) -> float | None:
    """The last number in ``answer`` (``1,234`` and ``1.5`` read as numbers), or None."""
    found = _NUMBER.findall(answer)
    if not found:
        return None
    raw = found[-1]
    if "," in raw and "." not in raw and all(len(p) == 3 for p in raw.split(",")[1:]):
        raw = raw.replace(",", "")  # thousands separators
    raw = raw.replace(",", ".") if raw.count(",") == 1 and "." not in raw else raw.replace(",", "")
    try:
        return float(raw)
    except ValueError:
        return None


def score_numeric(expected: float, answer: str) -> float:
    """``0.75 ** abs(expected - last number in answer)``; 0.0 without a number."""
    got = last_number(answer)
    if got is None:
        return 0.0
    return 0.75 ** abs(float(expected) - got)


def score_token(expected: str, answer: str, decoys: tuple[str, ...] = ()) -> float:
    """1.0 when ``expected`` is a token of ``answer`` and no decoy is; else 0.0."""
    if not token_in(expected, answer):
        return 0.0
    return 0.0 if any(token_in(d, answer) for d in decoys) else 1.0


def score_label(expected: str, answer: str, choices: tuple[str, ...]) -> float:
    """1.0 when the normalised answer is ``expected``, or exactly one of ``choices`` occurs in it as
    a whole word and that one is ``expected``; else 0.0."""
    norm = normalise(answer)
    if norm == normalise(expected):
        return 1.0
    present = {c for c in choices if token_in(normalise(c), norm)}
    return 1.0 if present == {expected} else 0.0


def parse_pairs(answer: str) -> set[tuple[str, str]]:
    """Unordered pairs of identifiers (``u123``, ``user_7``, ...) in ``answer``, each as a sorted
    tuple, lower case (see the module's ``pairs`` rule)."""
    pairs = set()
    for a, b in _PAIR.findall(answer):
        a, b = a.lower(), b.lower()
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    return pairs


def f1(expected: set, got: set) -> float:
    """F1 of ``got`` against ``expected`` (1.0 when both are empty, 0.0 when only one is)."""
    if not expected and not got:
        return 1.0
    hits = len(expected & got)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(got), hits / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_pairs(expected: list[list[str]], answer: str) -> float:
    """F1 of the answer's pairs against ``expected`` (pairs of identifiers, any order)."""
    want = {(min(a, b).lower(), max(a, b).lower()) for a, b in expected}
    return f1(want, parse_pairs(answer))


def score_name(expected: str, answer: str, choices: tuple[str, ...] = ()) -> float:
    """1.0 when ``expected`` (a path or a name) is a token of ``answer`` (a path may follow a
    directory: ``/`` before it is allowed) and no other of ``choices`` is; else 0.0."""
    def present(value: str) -> bool:
        return re.search(rf"(?<![\w\-.]){re.escape(value)}(?![\w\-/])", answer) is not None \
            if "/" in value else token_in(value, answer, extra=".")

    if not present(expected):
        return 0.0
    return 0.0 if any(present(c) for c in choices if c != expected) else 1.0


def score(task: Any, answer: str | None) -> float:
    """The score of ``answer`` (None: no answer, 0.0) for ``task`` (a :class:`~rlm_cli.bench.tasks.Task`),
    by its ``kind``. Raises ValueError for an unknown kind."""
    if answer is None:
        return 0.0
    answer = str(answer)
    if task.kind == "token":
        return score_token(task.expected, answer, task.decoys)
    if task.kind == "numeric":
        return score_numeric(float(task.expected), answer)
    if task.kind == "label":
        return score_label(task.expected, answer, task.choices)
    if task.kind == "pairs":
        return score_pairs(task.expected, answer)
    if task.kind == "name":
        return score_name(task.expected, answer, task.choices)
    raise ValueError(f"unknown scoring rule {task.kind!r}")
