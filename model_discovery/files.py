"""Atomic file writes: whoever reads a file (or writes it at the same time) sees the old content or a new one, never
half of one; and the tail of a file that grows (a log, a child's output). Every layer writes through here, so this
module imports nothing from the package.

A write goes to a temporary file with a name of its own beside the target and is renamed over it. Nothing is
fsynced: a killed process never leaves a torn file, a power cut may.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _reserve(target: Path) -> Path:
    """A new empty file beside ``target`` that no other writer holds.

    ``O_EXCL`` makes the name ours even if two writers drew the same one; mode 0o666 (less the umask) gives the
    permissions a plain ``open`` would, where ``tempfile.mkstemp`` would leave the target readable by its owner only.
    """
    while True:
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path for a writer that wants a file name (``torch.save``, ``Tokenizer.save``).

    When the block ends, the file written there replaces ``path``; if the block raises, it is removed and ``path``
    keeps its old content. ``path``'s folder is created if missing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes ``data`` (``str`` as UTF-8) to ``path`` atomically, creating its folder if missing."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def tail(path: str | os.PathLike, n: int) -> tuple[str, int]:
    """(the text of the last ``n`` bytes of ``path``, its size); ("", 0) for a file that is not there."""
    path = Path(path)
    if not path.is_file():
        return "", 0
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - n))
        return fh.read().decode(errors="replace"), size
