"""Loading sources (files, directories, ``-`` for stdin) into a :class:`~rlm_cli.context.LoadedContext`.

The implementation lives in :mod:`rlm_cli.loader.sources`; it is imported on first use (PEP 562),
so ``rlm --help`` and Tab completion, which import the CLI's option types from this package, do not
pay for the walker, decoders and binary sniffing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_cli.loader.options import LoadOptions

if TYPE_CHECKING:
    from rlm_cli.loader.sources import display_prefix, load_sources

__all__ = ["LoadOptions", "display_prefix", "load_sources"]


def __getattr__(name: str):
    if name in ("load_sources", "display_prefix"):
        from rlm_cli.loader import sources

        return getattr(sources, name)
    if name == "read":
        from rlm_cli.loader import read

        return read
    raise AttributeError(f"module 'rlm_cli.loader' has no attribute {name!r}")
