"""Writing output files safely: the path is checked before any work starts, the file is written
through a temporary file in the same folder and renamed into place (so a failure never leaves a
half-written file, nor clobbers the old one), its mode follows the umask like any file the user
creates, and every OS-level failure (no such folder, a folder in the way, no permission, disk full,
a file-size limit) is one ArchcostError naming the flag and the path."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import tempfile

from archcost.errors import ArchcostError, quote


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EFBIG:
        return "the file would exceed the file-size limit"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def check_output_path(path, flag: str = "-o", suffixes: tuple[str, ...] | None = None) -> pathlib.Path:
    """The output path, if a file can be created there (its folder exists and is writable, it
    is not itself a folder) and its suffix is one of ``suffixes``; else a one-line error. Called
    before the work so that a long run does not fail at its last step."""
    text = os.fspath(path)
    if not text or "\0" in text:
        raise ArchcostError(f"{flag}: not a file name: {quote(text)}")
    path = pathlib.Path(text)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ArchcostError(f"{flag} {quote(text)}: expected a file name ending in {', '.join(suffixes)}")
    try:
        if path.is_dir():
            raise ArchcostError(f"{flag} {quote(text)}: is a directory; give a file name")
        parent = path.parent
        if not parent.exists():
            raise ArchcostError(f"{flag} {quote(text)}: the folder {quote(str(parent))} does not exist")
        if not parent.is_dir():
            raise ArchcostError(f"{flag} {quote(text)}: {quote(str(parent))} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ArchcostError(f"{flag} {quote(text)}: no permission to write in {quote(str(parent))}")
        if path.exists() and not os.access(path, os.W_OK):
            raise ArchcostError(f"{flag} {quote(text)}: the file exists and is not writable")
        # os.access says yes to root everywhere, and knows nothing of read-only or special file
        # systems (/proc): create (and remove) a scratch file where the output will go.
        fd, scratch = tempfile.mkstemp(prefix=".archcost-", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(scratch)
    except OSError as exc:  # e.g. a name too long for the file system
        raise ArchcostError(f"{flag} {quote(text)}: {_reason(exc)}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data: str | bytes | None = None, *, writer=None, flag: str = "-o") -> pathlib.Path:
    """Write ``data`` (text or bytes), or whatever ``writer(binary_file)`` writes, to ``path``
    through a temp file in the same folder and a rename. The new file gets mode 0o666 & ~umask."""
    path = pathlib.Path(path)
    check_output_path(path, flag)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ArchcostError(f"{flag} {quote(str(path))}: cannot write: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        # mkstemp makes the file 0600; the user's umask decides, as for any file they create.
        mode = 0o666 & ~_umask()
        if path.exists():  # keep the mode of the file being replaced
            mode = path.stat().st_mode & 0o777
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ArchcostError(f"{flag} {quote(str(path))}: cannot write: {_reason(exc)}") from None
        raise
    return path
