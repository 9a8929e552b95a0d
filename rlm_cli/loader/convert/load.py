"""The loader's side of conversions: a detected document goes to the worker process and its text
into the context file, or becomes a skip (found by walking) or an :class:`InputError` (named)."""

from __future__ import annotations

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader.convert import ConversionError
from rlm_cli.loader.convert.progress import ConversionProgress
from rlm_cli.loader.convert.worker import ConverterProcess


class Conversions:
    """Converts the documents of one load (see :mod:`rlm_cli.loader.convert`).

    ``max_chars`` bounds one document's text (characters; the load passes ``--max-input-size``,
    read as characters). ``progress`` is shown on a terminal for slow conversions. :meth:`close`
    ends the worker process and the bar.
    """

    def __init__(self, max_chars: int, progress: ConversionProgress | None = None) -> None:
        self.max_chars = max_chars
        self.process = ConverterProcess()
        self.progress = progress if progress is not None else ConversionProgress()

    def add(self, writer: ContextWriter, path: str, fs_path: str, size_bytes: int, kind: str,
            strict: bool) -> bool:
        """Convert the file at ``fs_path`` (``kind`` from :func:`~rlm_cli.loader.convert.detect`)
        into ``writer`` as ``path``; returns whether it was loaded.

        A failure is a skip with the reason, or with ``strict`` (the file was named explicitly) an
        :class:`InputError`: ``cannot convert PATH: REASON``. ``OSError`` from writing propagates.
        """
        self.progress.start(path)
        try:
            result = self.process.convert(kind, fs_path, self.max_chars, self.progress.update)
        except ConversionError as exc:
            reason = str(exc)
            if strict:
                from rlm_cli.view.safe import inline

                raise InputError(f"cannot convert {inline(path)}: {inline(reason, 300)}") from None
            writer.skip(path, reason, size_bytes or None)
            return False
        finally:
            self.progress.done()
        writer.add(path, result.text, size_bytes=size_bytes,
                   converted=result.note, pages=tuple(result.pages) if result.pages else None)
        return True

    def prestart(self, names: list[str]) -> None:
        """Start the worker early when any of ``names`` (paths) has a document's extension."""
        from rlm_cli.loader.convert import extension_kind

        kinds = {kind for kind in map(extension_kind, names) if kind}
        if kinds:
            self.process.prestart(sorted(kinds))

    def close(self) -> None:
        """End the worker process and remove the bar."""
        self.process.close()
        self.progress.close()
