"""Local data made private from the first byte: directories 0700, files 0600.

``.azurite/`` holds every payload and record, ``.intake/`` and ``local.settings.json``
hold keys. Writing a file and then narrowing its mode leaves a moment in which another
local user can open it (the review's LOW-6), so files are created with their final mode
and replaced atomically, and directories are made 0700 (and narrowed when an older
version left them wider).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["PRIVATE_UMASK", "narrow", "open_private_log", "private_dir", "write_private"]

PRIVATE_UMASK = 0o077  # for child processes (Azurite) that create files of their own


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), never readable by others, even briefly.

    The temporary file is made by ``mkstemp`` (0600, a name nobody can guess or plant a
    link at beforehand), then renamed over ``path``.
    """
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(partial).replace(path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def narrow(path: Path) -> None:
    """Make an existing file its owner's only (one copied from an example may be 0644)."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def open_private_log(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
