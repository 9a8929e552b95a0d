"""Is it an answer? The checks every final answer passes, and the rescue when it does not.

Seen with a weak root LM (a 1.5B model, issue 22): final answers that were the offered search block
(``hits = search('...')\\nfor path, line, text in hits: ...``), the REPL's output pasted whole
(``Output of block 1 of 1:`` then twenty ``path:line:`` hits), rlm's own metadata (``The context
holds 49 file(s), 990,463 characters ...``) or nothing at all. None of those is an answer:
:func:`why_not_an_answer` names what it is instead. The loop refuses such a ``FINAL`` while it has
iterations left; the last call's answer that fails is replaced by one :func:`rescue_messages` call,
which shows the root LM the printed lines that bear on the question and asks for the answer in plain
words. A rescue that fails too ends the run with no answer (the loop's own status, exit code 3),
never with a fake one.

Every check is inert on an answer that follows the protocol: prose, a number, a name, a list, a
``path:line`` citation, code quoted inside a sentence.
"""

from __future__ import annotations

import ast
import functools
import re

from rlm_cli.run.parsing import REPL_NAMES, parse_python

STEP_NAMES = REPL_NAMES - {"print"}
"""Names only REPL code uses (``print`` is everyone's: a snippet of the user's code may call it)."""

MIN_PROMPT_LINE = 30  # characters: a line of rlm's prompts at least this long, found in an answer, is prompt text
MIN_DUMP_LINES = 10  # a whole printed output of this many search hits, given as the answer, is a dump
HIT_LINE = re.compile(r"^\S+:\d+: ")
DUMP_SHARE = 0.8
OUTPUT_HEADER = re.compile(r"^Output of block \d+ of \d+:", re.MULTILINE)
METADATA = re.compile(r"The context holds [\d,]+ file\(s\), [\d,]+ characters")  # rlm's first message
NO_ANSWER = "NO ANSWER"
MIN_QUESTION_WORDS = 4  # a shorter question may well be echoed by its answer ("Who wrote X?" -> "X ...")
RESCUE_CHARS = 6000  # characters of printed lines shown to the rescue call


def looks_like_code(text: str) -> bool:
    """Whether ``text`` is REPL code rather than a value: it parses as Python and names one of
    :data:`STEP_NAMES` (``search(...)``, ``print(context[:100])``,
    ``FINAL_VAR(x)``): a step, never an answer. A bare value (``42``, ``Paris``, ``[1, 2]``, the word
    ``context``) or a snippet of the user's own code that calls none of them is not."""
    tree = parse_python(text.strip())
    if tree is None or (len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
                        and isinstance(tree.body[0].value, ast.Name)):
        return False  # a bare word ("context", "files") is a value
    return any(isinstance(node, ast.Name) and node.id in STEP_NAMES for node in ast.walk(tree))


def prompt_lines(*texts: str, exclude: str = "") -> list[str]:
    """The fragments of rlm's own prompt ``texts`` long enough (:data:`MIN_PROMPT_LINE` characters,
    stripped) to identify them: each line, cut at ``{placeholders}`` of a template; less those that
    occur in ``exclude`` (the question: an answer may quote it)."""
    out = [piece for text in texts for piece in _pieces(text) if piece not in exclude]
    return list(dict.fromkeys(out))


def _pieces(text: str) -> tuple[str, ...]:
    """:func:`prompt_lines` of one text, before ``exclude``; memoised for texts up to
    :data:`CACHED_TEXT_CHARS` characters (the templates and a server's system prompt, the same for
    every run: splitting them took ~1 ms of the event loop per run)."""
    return _cached_pieces(text) if len(text) <= CACHED_TEXT_CHARS else _split_pieces(text)


def _split_pieces(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for line in text.splitlines():
        for piece in re.split(r"\{[^{}]*\}", line):
            piece = piece.strip().strip("\"'()`").strip()  # a template's f-string quotes and parentheses
            if len(piece) >= MIN_PROMPT_LINE:
                out.append(piece)
    return tuple(out)


CACHED_TEXT_CHARS = 16 * 1024  # x 64 entries: at most ~1 MB kept
_cached_pieces = functools.lru_cache(maxsize=64)(_split_pieces)


def static_prompt_lines(*messages: str, exclude: str = "") -> list[str]:
    """:func:`prompt_lines` of every prompt template of :mod:`rlm_cli.run.prompts`, plus a run's own
    ``messages`` (its system prompt and first message), less what occurs in ``exclude``: what an
    answer is checked against (the loop; ``rlm bench`` with no messages)."""
    from rlm_cli.run import prompts

    return prompt_lines(*messages, *(v for v in vars(prompts).values() if isinstance(v, str)), exclude=exclude)


def why_not_an_answer(answer: str | None, *, prompt_text: list[str], outputs: list[str],
                      question: str = "", errors: list[str] = ()) -> str | None:
    """What ``answer`` is when it is not an answer, or None when it is one.

    ``prompt_text``: lines of rlm's own prompts (:func:`prompt_lines`); ``outputs``: the stdout of
    every step the REPL ran (as the root LM was shown it); ``question``: the question asked (an
    answer that is the question, give or take two words, is the question copied back); ``errors``:
    the error lines of this run's failed steps (an answer that is one of them, give or take fences
    and an ``Error:`` prefix, is the REPL's own error). Returns ``"empty"``, ``"code"``, ``"the
    question itself"``, ``"an error of its own code"``, ``"rlm's own prompt text"`` or ``"a dump of
    the REPL's output"``."""
    if answer is None or not answer.strip():
        return "empty"
    text = answer.strip()
    if looks_like_code(text):
        return "code"
    bare = re.sub(r"^(?:```\w*\s*)+|(?:\s*```)+$", "", text).strip()
    bare = re.sub(r"^(?:Error:\s*)+", "", bare).strip()
    if bare and any(bare == err.strip() or bare == err.strip().split(": ", 1)[-1] for err in errors):
        return "an error of its own code"
    asked, said = words(question), words(text)
    if len(asked) >= MIN_QUESTION_WORDS and said[:len(asked)] == asked and len(said) - len(asked) < 3:
        return "the question itself"
    if METADATA.search(text) or any(line in text for line in prompt_text):
        return "rlm's own prompt text"
    said_text = " ".join(words(text))
    if len(said_text) >= MIN_PROMPT_LINE and any(said_text in " ".join(words(line)) for line in prompt_text):
        return "rlm's own prompt text"  # a piece of a prompt line: "The billing service listens on port 8443."
    if OUTPUT_HEADER.search(text):
        return "a dump of the REPL's output"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) >= MIN_DUMP_LINES and sum(bool(HIT_LINE.match(ln)) for ln in lines) >= DUMP_SHARE * len(lines):
        for out in outputs:
            if [ln.strip() for ln in out.splitlines() if ln.strip()] == lines:
                return "a dump of the REPL's output"
    return None


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (punctuation, quotes and spacing ignored)."""
    return re.findall(r"\w+", text.lower())


def relevant_lines(outputs: list[str], question: str, limit: int = RESCUE_CHARS) -> str:
    """The printed lines (``outputs``: each step's stdout) that share words with ``question``, most
    shared words first, at most ``limit`` characters in all, shown in the order they were printed.
    Empty when no printed line shares a word with it."""
    from rlm_cli.repl.child_grep import query_terms

    terms = [t for t in query_terms(question) if len(t) > 2]
    lines = list(dict.fromkeys(ln.rstrip() for out in outputs for ln in out.splitlines() if ln.strip()))
    if not lines:
        return ""
    scored = [(sum(t in ln.lower() for t in terms), -i, ln) for i, ln in enumerate(lines)]
    chosen = [item for item in sorted(scored, reverse=True) if item[0] > 0]
    kept, used = [], 0
    for item in chosen:
        piece = item[2][:500]
        if used + len(piece) + 1 > limit:
            break
        kept.append((-item[1], piece))
        used += len(piece) + 1
    return "\n".join(piece for _i, piece in sorted(kept))


def rescue_messages(question: str, lines: str) -> list[dict]:
    """The messages of the rescue call: the question and the printed ``lines`` that bear on it, and
    a request for the answer alone, in plain words (or :data:`NO_ANSWER`)."""
    return [
        {"role": "system", "content": "You answer a question from lines a program printed while searching a "
                                      "large input. Reply with the answer only, in plain words: no code, no "
                                      "FINAL(...), no explanation unless the question asks for one."},
        {"role": "user", "content": f"Question: {question}\n\nLines the search printed:\n{lines}\n\n"
                                    f"Reply with the answer to the question and nothing else. If these lines "
                                    f"do not hold the answer, reply exactly: {NO_ANSWER}"},
    ]
