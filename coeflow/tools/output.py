"""Standard output and error that outlive their reader.

``coeflow dev 2>&1 | tee log``: a Ctrl-C in the terminal ends ``tee`` and us at the same moment,
and the first thing the worker does about the signal is write a line to stderr (mode's
``Worker._on_sigint``). With nobody reading the pipe that write raises ``BrokenPipeError``
inside the signal handler, before it schedules the shutdown; asyncio swallows the error, and the
worker goes on running, its Ctrl-C lost (and every later one too). The same write failure
would otherwise break whatever prints next: a shutdown message, the interpreter's last flush.

``survive_closed_pipes()`` wraps ``sys.stdout`` and ``sys.stderr`` so that a write to a pipe
whose reader went away is dropped instead of raised, and points the file descriptor at
``/dev/null`` from then on (for every other writer of it, including the last flush at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import Any, TextIO


class SturdyStream:
    """A text stream that drops what it cannot deliver because its reader is gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """From now on the descriptor writes to /dev/null; what is still buffered goes there."""
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):
            self._stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 — kept open
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_closed_pipes() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once) in ``SturdyStream``s."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, SturdyStream):
            continue
        sturdy = SturdyStream(stream)
        setattr(sys, name, sturdy)
        atexit.register(sturdy.flush)
