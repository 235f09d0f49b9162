"""An append-only JSON Lines file with no name: where a journal keeps what no longer fits in
memory, so a long run keeps every entry without holding it in RAM.

The file is made with ``tempfile.TemporaryFile`` in the system's temporary folder (``TMPDIR``):
it has no name there (Linux's O_TMPFILE, or unlinked as soon as it is made), so the system
frees it when the file is closed or the process ends, however it ends (SIGTERM and SIGKILL
included), and nothing is ever left behind to clean up.

Lines are read back by position with ``os.pread``, which leaves the writer's offset alone: the
byte offset of every ``STRIDE``-th line is kept (8 bytes per ``STRIDE`` lines), so a read from
line ``n`` starts near it and skips at most ``STRIDE - 1`` lines.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

STRIDE = 256
READ_BYTES = 256 * 1024  # read back this much at a time


class SpillFile:
    """Lines appended in batches and read back from any line on; made on first append."""

    def __init__(self, name: str) -> None:
        self.name = name  # in the file's prefix, where the system shows one (lsof)
        self.count = 0  # lines written
        self.size = 0  # bytes written
        self._file: BinaryIO | None = None
        self._marks: list[int] = []  # byte offset of line k * STRIDE
        self._generation = 0  # bumped by clear(): readers of the old lines stop

    def append(self, lines: Iterable[bytes]) -> None:
        """Write ``lines`` (each without its newline) after the others, flushed. Taken a
        ``STRIDE`` at a time, so a long batch is never all in memory at once."""
        if self._file is None:
            # closed by close(), or by the system with the process
            self._file = tempfile.TemporaryFile(prefix=f"twinyard-{self.name}-")  # noqa: SIM115
        file = self._file
        group: list[bytes] = []
        for line in lines:
            if self.count % STRIDE == 0:
                self._marks.append(self.size)
            self.count += 1
            self.size += len(line) + 1
            group.append(line)
            if len(group) == STRIDE:
                file.write(b"\n".join(group) + b"\n")
                group.clear()
        if group:
            file.write(b"\n".join(group) + b"\n")
        file.flush()

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Lines ``start`` to ``stop`` (default: as many as are written when it is called),
        streamed; stops early if the file is cleared meanwhile."""
        stop = self.count if stop is None else min(stop, self.count)
        if start >= stop or self._file is None:
            return
        fd, generation = self._file.fileno(), self._generation
        offset = self._marks[start // STRIDE]
        skip, wanted = start % STRIDE, stop - start
        buffer, at = b"", 0
        while wanted:
            end = buffer.find(b"\n", at)
            if end < 0:
                if generation != self._generation:
                    return
                chunk = os.pread(fd, READ_BYTES, offset)
                if not chunk:
                    return
                offset += len(chunk)
                buffer, at = buffer[at:] + chunk, 0
                continue
            line, at = buffer[at:end], end + 1
            if skip:
                skip -= 1
                continue
            if generation != self._generation:
                return
            yield line
            wanted -= 1

    def clear(self) -> None:
        """Forget every line (the file is emptied)."""
        self._generation += 1
        self.count = self.size = 0
        self._marks.clear()
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()

    def close(self) -> None:
        """Give the file back to the system; a later append starts a new one."""
        self.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
