"""``grep`` and ``search`` in the REPL: line-aware searches over ``files`` (``search`` is described
below, at its code). Standard library only (``child.py``
loads it by file path, like its other siblings).

The search runs over ``context`` itself, one file's span at a time (``pattern.search(context, pos,
endpos)``), so no file is copied or split into lines. After a hit, the search goes on from the next
line: each matching line is reported once. Line numbers are counted with ``str.count("\\n")`` between
one hit and the next, so one call costs one pass over the files it searches (a newline count runs at
memory speed, far faster than the regex itself) and holds nothing per line; a 100 MB ``files`` has no
line table to build or keep.
"""

from __future__ import annotations

import bisect
import fnmatch
import heapq
import math
import re
import sys

MAX_LINE_CHARS = 300  # characters of a matching line returned; a longer line is a window around the hit
DEFAULT_MAX_HITS = 200


def _compile(pattern, flags: int) -> re.Pattern:
    """``pattern`` (a str or compiled str pattern) compiled with ``flags`` and ``re.MULTILINE`` (``^``
    and ``$`` anchor at line starts and ends). Raises TypeError for bytes, re.error for a bad regex."""
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError("grep: the pattern must be a str (or a compiled str pattern), not bytes")
        return re.compile(pattern.pattern, pattern.flags | flags | re.MULTILINE)
    if not isinstance(pattern, str):
        raise TypeError(f"grep: the pattern must be a str or a compiled pattern, not {type(pattern).__name__}")
    return re.compile(pattern, flags | re.MULTILINE)


def _selector(paths, name: str = "grep"):
    """A predicate over file paths: None (every file), a glob or exact path, or a list of them. Globs
    are fnmatch-style (``*`` also matches ``/``: ``"*.py"`` selects ``src/app.py``). A path also
    selects the files it ends, at a ``/``: ``"argparse.py"`` selects ``lib/argparse.py`` (models drop
    the leading directory the file tree shows)."""
    if paths is None:
        return lambda path: True
    globs = [paths] if isinstance(paths, str) else list(paths)
    if not all(isinstance(g, str) for g in globs):
        raise TypeError(f"{name}: paths must be None, a glob string or a list of glob strings")
    tails = tuple("/" + g.lstrip("/") for g in globs if g.strip("/"))
    return lambda path: path.endswith(tails) or any(path == g or fnmatch.fnmatchcase(path, g) for g in globs)


MAX_PATH_CHARS = 4096  # a `paths` string longer than this, or holding a newline, is text, not a glob


def _text_as_path(context: str, spans: dict, paths, name: str):
    """``paths`` as given, unless it is a file's text rather than a name (``grep(rx, files[p])``, a
    call small models write): then the path of the file holding exactly that text (None when it is
    all of ``context``). Raises ValueError for other text, saying what ``paths`` takes."""
    if not isinstance(paths, str) or ("\n" not in paths and len(paths) <= MAX_PATH_CHARS):
        return paths
    if paths == context:
        return None
    for path, (start, end) in spans.items():
        if end - start == len(paths) and context.startswith(paths, start):
            return path
    example = next(iter(spans), "notes.txt")
    raise ValueError(f"{name}: paths selects files by name (a glob such as '*.txt', or a path of files), "
                     f"not text; to search one file pass its path: {name}(..., paths={example!r})")


def _clip(line: str, col: int, length: int) -> str:
    """``line`` cut to :data:`MAX_LINE_CHARS` characters around the hit at ``col`` (``length`` long)."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    start = max(0, min(col - (MAX_LINE_CHARS - min(length, MAX_LINE_CHARS)) // 2, len(line) - MAX_LINE_CHARS))
    return ("..." if start else "") + line[start:start + MAX_LINE_CHARS] + (
        "..." if start + MAX_LINE_CHARS < len(line) else "")


def grep(context: str, spans: dict, pattern, paths=None, flags: int = 0,
         max_hits: int = DEFAULT_MAX_HITS) -> list[tuple[str, int, str]]:
    """Search the files (``spans``: path -> (start, end) character offsets into ``context``) for
    ``pattern``; see :func:`make_grep` for the arguments the model passes and the result."""
    rx = _compile(pattern, flags)
    wanted = _selector(_text_as_path(context, spans, paths, "grep"))
    if isinstance(max_hits, bool) or not isinstance(max_hits, int) or max_hits < 0:
        raise ValueError("grep: max_hits must be an int >= 0")
    hits: list[tuple[str, int, str]] = []
    chosen = [(path, start, end) for path, (start, end) in spans.items() if wanted(path)]
    for n, (path, start, end) in enumerate(chosen):
        line_no, counted = 1, start  # newlines counted up to `counted`
        for m, line_start, line_end in _matching_lines(context, rx, start, end):
            if len(hits) >= max_hits:
                more = _count_matches(context, rx, line_start, end) + sum(
                    _count_matches(context, rx, s, e) for _p, s, e in chosen[n + 1:])
                print(f"[grep: stopped at max_hits={max_hits}; {more:,} more matches follow (to list or count every "
                      f"matching line, pass max_hits={max_hits + more}); narrow paths= to see others]", file=sys.stderr)
                return hits
            hit = m.start()
            line_no += context.count("\n", counted, line_start)
            counted = line_start
            text = context[line_start:line_end].removesuffix("\r") if line_end - line_start <= MAX_LINE_CHARS \
                else _clip(context[line_start:line_end], hit - line_start, m.end() - hit)
            hits.append((path, line_no, text))
    return hits


def _matching_lines(context: str, rx: re.Pattern, start: int, end: int):
    """``(match, line start, line end)`` for each line of ``context[start:end]`` holding a match of
    ``rx`` (its first), in order; one regex search per matching line, the search going on from the
    next line."""
    pos = start
    while pos < end:
        m = rx.search(context, pos, end)
        if m is None:
            return
        hit = m.start()
        if hit == end and context[end - 1] == "\n":  # past the last line's newline: no line there
            return
        line_start = context.rfind("\n", start, hit) + 1 or start
        line_end = context.find("\n", hit, end)
        if line_end < 0:
            line_end = end
        yield m, line_start, line_end
        pos = line_end + 1


def _count_matches(context: str, rx: re.Pattern, pos: int, end: int) -> int:
    """How many matches of ``rx`` ``context[pos:end]`` holds (no line text built: one regex pass)."""
    return sum(1 for _ in rx.finditer(context, pos, end))


def count(context: str, spans: dict, pattern, paths=None, flags: int = 0) -> int:
    """How many lines of the files (``spans``) match ``pattern`` (a regex, as :func:`grep` takes it):
    one regex pass, no line text built, no cap. Raises TypeError/re.error as :func:`grep` does."""
    rx = _compile(pattern, flags)
    wanted = _selector(_text_as_path(context, spans, paths, "count"), "count")
    return sum(1 for path, (start, end) in spans.items() if wanted(path)
               for _ in _matching_lines(context, rx, start, end))


def make_count(context: str, spans: dict):
    """The ``count`` function of the REPL namespace, over ``context`` and the file spans."""

    def count_lines(pattern, paths=None, flags=0) -> int:
        """How many lines of ``files`` match ``pattern``: ``count(pattern, paths=None, flags=0)`` -> int.

        ``pattern``: a regular expression as for ``grep`` (``^``/``$`` match at each line); ``paths``: a
        glob or exact path, or a list of them, None for every file; ``flags``: ``re`` flags. Each
        matching line counts once; there is no cap (use it to count records, log lines, matches)."""
        return count(context, spans, pattern, paths, flags)

    count_lines.__name__ = count_lines.__qualname__ = "count"
    return count_lines


def make_grep(context: str, spans: dict):
    """The ``grep`` function of the REPL namespace, over ``context`` and the file spans."""

    def grep_files(pattern, paths=None, flags=0, max_hits=DEFAULT_MAX_HITS) -> list:
        """Search ``files`` line by line: ``grep(pattern, paths=None, flags=0, max_hits=200)`` ->
        ``[(path, line_number, line_text), ...]``.

        ``pattern``: a regular expression (str or compiled), searched with ``re.MULTILINE`` (``^``/``$``
        match at each line); ``flags``: ``re`` flags such as ``re.IGNORECASE``; ``paths``: a glob or
        exact path, or a list of them (``"*.py"``, ``"src/*"``; ``*`` also matches ``/``), None for
        every file. Each matching line is listed once, in file order; line numbers start at 1 (cite
        them as ``path:line``); the line text is cut to 300 characters around the match. Stops after
        ``max_hits`` hits and says on stderr how many more matches follow."""
        return grep(context, spans, pattern, paths, flags, max_hits)

    grep_files.__name__ = grep_files.__qualname__ = "grep"
    return grep_files


# --- search ----------------------------------------------------------------------------------
# ``search`` in the REPL: the lines of ``files`` that best match a question's words, best first.
#
# ``grep`` needs the model to choose a regex; a weak root LM often chooses badly (one common word, or
# the whole question as a phrase). ``search(query)`` takes plain words (the question itself will do),
# drops stop words, and ranks every line that contains at least one of the remaining terms.
#
# Ranking: first by how many of the query's *key terms* the line holds (identifiers: camelCase,
# snake_case, dotted names, words mixing letters and digits, anything in backticks or quotes; and
# quoted phrases), then by the sum of the cubes of its terms' inverse document frequencies over lines
# (BM25's IDF, without length normalisation: Robertson & Zaragoza, "The Probabilistic Relevance
# Framework", 2009, section 3.1). Plain summed IDF let many common words outrank one rare word (a
# docstring holding "file", "function", "defines" above the one line defining ``setMaxConns``); the
# cube makes rare terms dominate, so a line with every rare word of the query comes first. A term
# matches at the start of a word, case-insensitively (``vault`` matches ``Vaults``; ``auth`` matches
# ``authenticate``).
#
# One C-level counting pass over the selected files' spans of ``context`` (lower-cased ASCII chunks of
# 4 MB, see ``_hits``), then lines visited term by term with max-score pruning (see ``search``);
# memory is one chunk, one counter per term, the scored lines' offsets and a heap of the best ``k``.

MAX_TERMS = 32  # distinct query terms used; a longer query is cut
MAX_K = 1000
DEFAULT_K = 20
WORD = re.compile(r"\w+")
STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
    "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "itself", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "our", "out", "over", "own", "please", "same", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you", "your"
})


QUOTED = re.compile(r"`([^`\n]{1,100})`|[\"\u201c]([^\"\u201d\n]{1,100})[\"\u201d]|(?<!\w)'([\w.]{2,100})'(?!\w)")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
IDENTIFIER = re.compile(r"[a-z][A-Z]|\w_\w|[A-Za-z]\d|\d[A-Za-z]")  # camelCase, snake_case, letters+digits


def parse_query(query: str) -> tuple[list[str], set[str]]:
    """``(terms, key_terms)`` of ``query``: the distinct lower-case terms in order (key terms first,
    then words; stop words and one-character words dropped unless that leaves none), at most
    :data:`MAX_TERMS`; and the subset that are key terms: identifiers (camelCase, snake_case, dotted
    names, letters mixed with digits), words in backticks or quotes, and quoted phrases (whitespace
    collapsed to one space)."""
    keys: list[str] = []
    for m in QUOTED.finditer(query):
        keys.append(" ".join((m.group(1) or m.group(2) or m.group(3)).split()))
    keys += DOTTED.findall(query)
    words = list(dict.fromkeys(WORD.findall(query)))
    keys += [w for w in words if IDENTIFIER.search(w)]
    keys = [k.lower() for k in keys if k.strip() and WORD.search(k)]
    lowered = list(dict.fromkeys(w.lower() for w in words))
    kept = [w for w in lowered if len(w) > 1 and w not in STOP_WORDS] or lowered
    terms = list(dict.fromkeys(keys + kept))[:MAX_TERMS]
    return terms, set(keys) & set(terms)


def query_terms(query: str) -> list[str]:
    """The terms of ``query`` as :func:`parse_query` gives them (key terms first)."""
    return parse_query(query)[0]


def _word_char(ch: str) -> bool:
    """Whether ``ch`` is a word character of ``re``'s ``\\w`` (letters, digits, ``_``)."""
    return ch.isalnum() or ch == "_"


CHUNK_CHARS = 4_000_000  # characters lower-cased at a time by search (cut at a line end)


def _chunk_end(context: str, pos: int, end: int) -> int:
    """Where the chunk of ``context`` starting at ``pos`` ends (at most :data:`CHUNK_CHARS` later,
    before ``end``): after a line end, else between words of a line longer than a chunk (or
    anywhere, in a huge word)."""
    stop = min(end, pos + CHUNK_CHARS)
    if stop < end:
        cut = context.rfind("\n", pos, stop)
        if cut >= pos:
            return cut + 1
        back = stop
        while back > max(pos + 1, stop - 1000) and _word_char(context[back - 1]):
            back -= 1
        stop = back if back > pos + 1 and not _word_char(context[back - 1]) else stop
    return stop


def _hits(context: str, start: int, end: int, rx: re.Pattern, folded: re.Pattern):
    """The offsets and lower-case text of ``rx``'s matches in ``context[start:end]`` at word starts.
    ASCII text is searched a chunk at a time in a lower-cased copy with ``folded`` (the terms in lower
    case, matched case-sensitively: about five times faster than ``re.IGNORECASE``); a chunk with
    other characters (whose lower case may change its length) is searched with ``rx``. Chunks end at
    a line end, and terms hold no newline, so no match is split."""
    pos = start
    while pos < end:
        stop = _chunk_end(context, pos, end)
        chunk = context[pos:stop]
        if chunk.isascii():
            low = chunk.lower()
            for m in folded.finditer(low):
                hit = m.start()
                if not (hit and _word_char(low[hit - 1])) and not (hit == 0 and pos > start
                                                                     and _word_char(context[pos - 1])):
                    yield pos + hit, m.group(0)
        else:
            for m in rx.finditer(context, pos, stop):
                hit = m.start()
                if not (hit > start and _word_char(context[hit - 1])):
                    yield hit, m.group(0).lower()
        pos = stop


KEY_TIER = 1e6  # weight of a key term: above any sum of cubed IDFs (32 terms x ln(1e8)^3 < 2e5)
TRACKED = 20_000  # occurrences of a term recorded by position; a more common term is scanned only if needed


def _score_line(context: str, line_start: int, line_end: int, finders: dict, weight: dict) -> tuple[float, int]:
    """The score of one line (the weights of the terms it holds at a word start) and the offset of
    its first match (``line_end`` when none)."""
    line = context[line_start:line_end]
    score, first = 0.0, line_end
    for term, finder in finders.items():
        m = finder.search(line)
        if m:
            score += weight[term]
            first = min(first, line_start + m.start())
    return score, first


def _census(context: str, chosen: list, terms: list[str], finders: dict) -> tuple[int, dict, dict]:
    """One pass over the chosen spans: ``(lines, counts, positions)``: the number of lines; per term
    its occurrences (a substring count in lower-cased chunks: an estimate of its document
    frequency, which only weighs it); and the offsets of its word-start
    matches in ``context``, or None for a term met more than :data:`TRACKED` times."""
    lines = 0
    counts = dict.fromkeys(terms, 0)
    positions: dict[str, list[int] | None] = {t: [] for t in terms}
    for _path, start, end in chosen:
        lines += context.count("\n", start, end) + 1
        pos = start
        while pos < end:
            stop = _chunk_end(context, pos, end)
            chunk = context[pos:stop]
            low = chunk.lower()
            ascii_chunk = chunk.isascii()  # else lower() may change lengths: positions come from the regex
            for term in terms:
                n = low.count(term)
                counts[term] += n
                found = positions[term]
                if not n or found is None:
                    continue
                if len(found) + n > TRACKED:
                    positions[term] = None
                elif not ascii_chunk:
                    found.extend(pos + m.start() for m in finders[term].finditer(chunk))
                else:
                    at = low.find(term)
                    while at >= 0:
                        if not (at and _word_char(low[at - 1])) and not (at == 0 and pos > start
                                                                         and _word_char(context[pos - 1])):
                            found.append(pos + at)
                        at = low.find(term, at + 1)
            pos = stop
    return lines, counts, positions


def search(context: str, spans: dict, query, paths=None, k: int = DEFAULT_K) -> list[tuple[str, int, str]]:
    """The ``k`` lines of the files (``spans``: path -> (start, end) character offsets into
    ``context``) that best match ``query``; see :func:`make_search` for what the model passes.
    Raises TypeError for a non-str query, ValueError for a bad ``k``.

    A line's score is ``KEY_TIER`` per key term it holds plus the cubed IDF of each other term it
    holds (so key terms rank first). One pass counts each term (:func:`_census`, C-level string
    counts on lower-cased chunks) and records where the rarer ones occur. Lines are then visited
    term by term, the heaviest first, each line scored in full when first met; a term's remaining
    occurrences are skipped once no line lacking every heavier term can beat the ``k``-th best
    (max-score pruning: Turtle & Flood, "Query evaluation: strategies and optimizations", 1995). A
    word on every line of 100 MB then costs the ``k`` lines it fills, not a Python step per line.
    Ties go to the line met first."""
    if not isinstance(query, str):
        raise TypeError(f"search: the query must be a str of words, not {type(query).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"search: k must be an int from 1 to {MAX_K}")
    terms, keys = parse_query(query)
    if not terms:
        return []
    wanted = _selector(_text_as_path(context, spans, paths, "search"), "search")
    chosen = [(path, start, end) for path, (start, end) in spans.items() if wanted(path)]
    all_finders = {t: re.compile(rf"(?<!\w){re.escape(t)}", re.IGNORECASE) for t in terms}
    lines_total, df, positions = _census(context, chosen, terms, all_finders)
    present = [t for t in terms if df[t]]
    weight = {t: KEY_TIER if t in keys else math.log(1 + max(0.5, lines_total - df[t] + 0.5) / (df[t] + 0.5)) ** 3
              for t in present}
    finders = {t: all_finders[t] for t in present}
    order = sorted(present, key=lambda t: -weight[t])
    starts = sorted((start, end, path) for path, start, end in chosen)
    best: list[tuple[float, int, str, int, int, int]] = []  # (score, -seen, path, start, end, first) min-heap
    scored: set[int] = set()
    seen = 0

    def occurrences(term: str):
        """(offset, span start, span end, path) of ``term``'s word-start matches, in context order."""
        found = positions[term]
        if found is not None:
            for hit in found:
                span = starts[bisect.bisect_right(starts, (hit, float("inf"))) - 1]
                yield hit, span[0], span[1], span[2]
            return
        single = re.compile(rf"(?<!\w){re.escape(term)}", re.IGNORECASE)
        single_folded = re.compile(rf"(?<![a-z0-9_]){re.escape(term)}")
        for start, end, path in starts:
            for hit, _t in _hits(context, start, end, single, single_folded):
                yield hit, start, end, path

    for i, term in enumerate(order):
        bound = sum(weight[t] for t in order[i:])  # the most a line holding none of the heavier terms scores
        if len(best) >= k and bound <= best[0][0]:
            break
        for hit, start, end, path in occurrences(term):
            line_start = context.rfind("\n", start, hit) + 1 or start
            if line_start in scored:
                continue
            if len(best) >= k and bound <= best[0][0]:
                break
            line_end = context.find("\n", hit, end)
            line_end = end if line_end < 0 else line_end
            scored.add(line_start)
            score, first = _score_line(context, line_start, line_end, finders, weight)
            seen += 1
            item = (score, -seen, path, line_start, line_end, first)
            if len(best) < k:
                heapq.heappush(best, item)
            elif item > best[0]:
                heapq.heapreplace(best, item)
    best.sort(reverse=True)
    hits = []
    for _score, _seen, path, line_start, line_end, first in best:
        start = spans[path][0]
        line_no = context.count("\n", start, line_start) + 1
        text = context[line_start:line_end]
        text = text.removesuffix("\r") if len(text) <= MAX_LINE_CHARS else _clip(text, first - line_start, 1)
        hits.append((path, line_no, text))
    return hits


def make_search(context: str, spans: dict):
    """The ``search`` function of the REPL namespace, over ``context`` and the file spans."""

    def search_files(query, paths=None, k=DEFAULT_K) -> list:
        """The lines of ``files`` that best match the words of ``query``, best first:
        ``search(query, paths=None, k=20)`` -> ``[(path, line_number, line_text), ...]``.

        ``query``: plain words, e.g. the question itself (not a regex); stop words are ignored and a
        word matches at the start of a word in any case. Lines holding the query's identifiers
        (``setMaxConns``, ``max_conns``, ``os.path``, words in backticks or quotes) and quoted phrases
        rank first, then lines holding more of its rare words. ``paths``: a glob or exact path, or a list of them, None for every file; ``k``: how
        many lines (1-1000). Line numbers start at 1 (cite them as ``path:line``); the line text is cut
        to 300 characters."""
        return search(context, spans, query, paths, k)

    search_files.__name__ = search_files.__qualname__ = "search"
    return search_files


def make_tools(context: str, spans: dict) -> dict:
    """The REPL's search functions by name (``grep``, ``search``, ``count``), over ``context`` and the
    spans."""
    return {"grep": make_grep(context, spans), "search": make_search(context, spans),
            "count": make_count(context, spans)}
