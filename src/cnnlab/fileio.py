"""Atomic file writes: a temporary file in the same folder, flushed and synced,
then renamed over the target, so a crash leaves either the old file or the new
one, never half of one. Every file cnnlab writes goes through here.

When the write fails (a full disk, a read-only folder, a quota), the target is
left as it was, the temporary file is removed, and the ``OSError`` names the
target (``[Errno 28] No space left on device: 'run/checkpoint.safetensors'``),
not the temporary file or nothing at all as ``write`` and ``fsync`` report it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` as the same kind of ``OSError`` (same errno) naming ``target``."""
    named = OSError(exc.errno, exc.strerror or str(exc), os.fspath(target))
    return named if exc.errno is not None else type(exc)(f"{target}: {exc}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``.

    Readers never see a half-written ``path``: either the old file or the complete
    new one. If the body raises, the temporary file is removed and ``path`` is
    left untouched. The new file gets the usual permissions (``0666 & ~umask``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)  # its errors name the folder
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:  # a read-only folder: name the file we meant to write
        raise _naming(e, target) from e
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # write/flush/fsync: unnamed
            raise _naming(e, target) from e
        if isinstance(e, OSError) and e.filename == tmp:
            raise _naming(e, target) from e
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check, before any work, that files can be written in the folder ``path``.

    Missing folders are fine (they are created, parents too, when the first file
    is written); what is refused, with :class:`~cnnlab.errors.InvalidArgumentError`
    naming ``what``, the path and the problem:

    - ``path`` is a file, or a file stands where one of its parent folders should be;
    - the nearest existing folder is on a read-only file system;
    - the nearest existing folder is not writable (permissions; root bypasses them).

    >>> import tempfile
    >>> check_output_dir(Path(tempfile.mkdtemp()) / "new" / "run").name
    'run'
    >>> check_output_dir(__file__)
    Traceback (most recent call last):
    ...
    cnnlab.errors.InvalidArgumentError: --out ...fileio.py: is a file, not a folder
    """
    from cnnlab.errors import InvalidArgumentError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"{what} {out}: is a file, not a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidArgumentError(
            f"{what} {out}: {existing} is a file, not a folder, so {out} cannot be created")
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        read_only = False
    if read_only:
        raise InvalidArgumentError(f"{what} {out}: {existing} is on a read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{what} {out}: cannot write in {existing} (permission "
                                   "denied)")
    return out
