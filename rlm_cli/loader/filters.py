"""``--include`` / ``--exclude`` / the default excludes, applied to files found by walking.

They act like patterns on git's command line (``git ls-files --exclude=...``): gitignore syntax,
matched against paths relative to the directory given, above every ignore file in precedence. The
default excludes come first, so ``--exclude '!package-lock.json'`` takes one back. As in git, a
directory that is excluded is excluded whole (a negation cannot reach a file below it). A file is
loaded when it is not excluded and, if include patterns were given, it or one of its directories
matches one (``--include '*.py'``, ``--include src/``; ``!`` patterns carve out exceptions).
"""

from __future__ import annotations

from rlm_cli.loader.ignore import Pattern, RuleSet, parse_pattern
from rlm_cli.loader.options import DEFAULT_EXCLUDES, LoadOptions

DEFAULT_SOURCE = "default exclude"
EXCLUDE_SOURCE = "--exclude"
NOT_INCLUDED = "not matched by --include"


def _patterns(lines, source: str) -> list[Pattern]:
    return [p for p in (parse_pattern(line, source) for line in lines) if p is not None]


class PathFilter:
    """Decides for paths relative to one directory source (POSIX, directories end with ``/``)."""

    def __init__(self, options: LoadOptions) -> None:
        excludes = _patterns(DEFAULT_EXCLUDES, DEFAULT_SOURCE) if options.default_excludes else []
        excludes += _patterns(options.exclude, EXCLUDE_SOURCE)
        self._exclude = RuleSet(excludes)
        self._include = RuleSet(_patterns(options.include, "--include")) if options.include else None
        self._dirs: dict[str, bool | None] = {}

    def dir_excluded(self, rel_dir: str) -> str | None:
        """The reason the directory ``rel_dir`` (ending with ``/``) is excluded whole, or ``None``."""
        pat = self._exclude.match(rel_dir.rstrip("/"), True) if self._exclude else None
        return pat.source if pat is not None and not pat.negated else None

    def file_reason(self, rel: str) -> str | None:
        """Why the file at ``rel`` is not loaded (exclusion or ``--include``), or ``None`` to load it.

        Directories above ``rel`` are checked too (call :meth:`dir_excluded` on them first to prune).
        """
        if self._exclude:
            pat = self._exclude.match(rel, False)
            if pat is not None and not pat.negated:
                return pat.source
        if self._include is None:
            return None
        return None if self._included(rel) else NOT_INCLUDED

    def _included(self, rel: str) -> bool:
        """Top-down: a directory matching a ``!`` pattern is out whole; otherwise the deepest match wins."""
        state = False
        d = ""
        for part in rel.split("/")[:-1]:
            d += part
            if d not in self._dirs:
                pat = self._include.match(d, True)
                self._dirs[d] = None if pat is None else not pat.negated
            if self._dirs[d] is False:
                return False
            if self._dirs[d]:
                state = True
            d += "/"
        pat = self._include.match(rel, False)
        return state if pat is None else not pat.negated
