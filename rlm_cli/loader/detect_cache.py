"""chardet's answers kept between loads: a file that is not UTF-8 is detected once, not on every load.

chardet's first use in a process costs about 0.07 s of CPU whatever the sample's size (its models
load, and it tries some 85 codecs, each imported on first lookup): on the django sdist, two files of
about 50 bytes made a fifth of a second ``rlm ls``'s CPU time. The answer depends only on the sample
and on chardet and rlm's rules, so it is kept in the convert cache
(:class:`~rlm_cli.loader.convert.cache.ConvertCache`: the same directory, size bound, trust checks
and ``RLM_CONVERT_CACHE_MAX=0`` switch), keyed by :func:`~rlm_cli.loader.convert.cache.entry_key`
of the kind ``"encoding"`` and the SHA-256 of the sample. That key's converter identity covers
chardet's version and ``decode.py``'s source, so a new chardet or new rules miss. An entry's text is
the codec name; it is used only when Python gives that name back unchanged for a text encoding
(anything else is a miss, detected afresh). With the cache off, nothing here runs.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Callable

KIND = "encoding"
NOTE = "detected encoding"
_opened: dict[tuple[str, int], object] = {}  # (cache directory, bound) -> its ConvertCache or None
_memo: dict[str, str] = {}  # entry key -> codec name, answers seen in this process
_puts = 0  # entries this process stored: the directory is trimmed after the 1st, 2nd, 4th, 8th...


def _cache():
    """This process's cache (opened once per directory and bound), or ``None`` when it is off."""
    from rlm_cli.loader.convert.cache import ConvertCache, max_bytes_from_env
    from rlm_cli.settings.paths import cache_dir

    bound = max_bytes_from_env()
    if bound <= 0:
        return None
    where = (str(cache_dir()), bound)
    if where not in _opened:
        _opened[where] = ConvertCache.open(max_bytes=bound)
    return _opened[where]


def usable(name: object) -> bool:
    """Whether a cached ``name`` is one :func:`rlm_cli.loader.decode.detect_here` could have given: a
    short ASCII codec name that Python's codecs give back unchanged, for a text encoding."""
    if not isinstance(name, str) or not name.isascii() or not 0 < len(name) <= 64 or name == "ascii":
        return False
    try:
        info = codecs.lookup(name)
        if info.name != name or not getattr(info, "_is_text_encoding", True):
            return False  # not a text encoding: hex, zlib, rot13 (bytes.decode refuses them)
        b"a\x80".decode(name, "replace")
    except (LookupError, ValueError, TypeError):
        return False
    return True


def detect_cached(sample: bytes, detect: Callable[[bytes], str]) -> str:
    """``detect(sample)`` (a codec name), taken from the cache when it holds the answer for these
    exact bytes; a fresh answer is stored. Never raises for the cache (a cache that cannot be used
    is a miss); what ``detect`` raises propagates."""
    global _puts
    try:
        cache = _cache()
    except Exception:  # noqa: BLE001 - a cache problem must not stop a load
        cache = None
    if cache is None:
        return detect(sample)
    from rlm_cli.loader.convert import Converted
    from rlm_cli.loader.convert.cache import entry_key

    key = entry_key(KIND, hashlib.sha256(sample).hexdigest())
    name = _memo.get(key)
    if name is not None:
        return name
    hit = cache.get(key)
    if hit is not None and hit.note == NOTE and usable(hit.text):
        _memo[key] = hit.text
        return hit.text
    name = detect(sample)
    _puts += 1
    cache.put(key, Converted(name, NOTE), evict=_puts & (_puts - 1) == 0)
    _memo[key] = name
    return name
