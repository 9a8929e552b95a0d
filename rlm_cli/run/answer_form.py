"""The answer in the form the question asked for: "Answer with a number", "Answer with the label
only", "one word: more, fewer or same", "Answer with the file's path".

Seen with a weak root LM (issue 22): ``127 (records.txt:4)`` for "Answer with a number" (a reader
taking the last number gets 4), ``The function `_callable` is defined in the file
`stdlib/unittest/mock.py`.`` for "Answer with the file's path". When the question asks for one
value of a kind and the answer holds exactly one value of that kind among other words, the answer
becomes that value. Nothing else changes: an answer already in the asked form, an answer holding two
candidates (ambiguous) or none, and every question that asks for no particular form are left as they
are, so a model that follows the instruction loses nothing.
"""

from __future__ import annotations

import re

from rlm_cli.run.first_block import LISTED, list_items
from rlm_cli.run.guesses import paths_in

ASKS_NUMBER = re.compile(r"\b(?:answer|reply|respond)\s+with\s+(?:a|the|one)\s+(?:number|count|integer)\b"
                         r"|\b(?:number|count|integer)\s+only\b", re.IGNORECASE)
ASKS_PATH = re.compile(r"\b(?:answer|reply|respond)\s+with\s+(?:the|its|a)\s+(?:file(?:'s)?\s+)?path\b"
                       r"|\bpath\s+only\b", re.IGNORECASE)
ASKS_ONE_OF = re.compile(r"\b(?:answer|reply|respond)\s+with\s+(?:one\s+word|the\s+label|one\s+of)\b"
                         r"|\b(?:label|word)\s+only\b", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.:/-])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w/-])")
THAN = re.compile(r"\bthan\b", re.IGNORECASE)
MAX_ONE_OF_WORDS = 12  # a longer answer naming one option may be explaining, not choosing
MAX_FORMED = 2000  # characters: a longer answer is an explanation the user may want whole


def in_asked_form(question: str, answer: str) -> str:
    """``answer`` cut to the one value ``question`` asks for (a number, a file path, one of the
    options it lists), when the answer holds exactly one such value among other text; else
    ``answer`` unchanged."""
    text = answer.strip()
    if not text or len(text) > MAX_FORMED:
        return answer
    if ASKS_NUMBER.search(question):
        return _only(text, _numbers(text)) or answer
    if ASKS_PATH.search(question):
        return _only(text, paths_in(text)) or answer
    if ASKS_ONE_OF.search(question):
        if len(text.split()) > MAX_ONE_OF_WORDS or THAN.search(text):
            return answer  # "more records of 'b' than of 'a'": its one option word may say the reverse
        options = _options(question)
        found = [o for o in options if re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text, re.IGNORECASE)]
        return _only(text, found) or answer
    return answer


def _only(text: str, values: list[str]) -> str | None:
    """The single distinct value of ``values`` when ``text`` holds more than it; else None."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) != 1 or text.strip(" .`'\"*") == distinct[0]:
        return None
    return distinct[0]


def _numbers(text: str) -> list[str]:
    """The numbers of ``text`` written as numbers: not the line number of a ``path:12`` reference,
    nor digits inside a word, a path or a code (``u1234``, ``a.txt``, ``9429-3981``)."""
    return [m.group(0).replace(",", "") for m in NUMBER.finditer(text)]


def _options(question: str) -> list[str]:
    """The options a question lists (``more, fewer or same``; ``The labels are: a, b, c``): the
    items of its comma-separated lists (:func:`rlm_cli.run.first_block.list_items`)."""
    items = [i for m in LISTED.finditer(question) for i in list_items(m.group(0), ("and", "or", "the", "a"))]
    return list(dict.fromkeys(items))


def formed_answer(question: str, answer: str | None, bus) -> str | None:
    """:func:`in_asked_form` of a run's final ``answer`` (None stays None), with a notice on ``bus``
    (a :class:`rlm_cli.run.events.EventBus`) when it cut the answer; the full answer stays in the
    trajectory, in the reply that gave it."""
    if answer is None:
        return None
    formed = in_asked_form(question, answer)
    if formed != answer:
        from rlm_cli.run.events import Notice

        bus.emit(Notice(f"the answer was cut to the one value the question asked for (from {len(answer):,} "
                        "characters; the trajectory keeps the whole reply)", level="info"))
    return formed
