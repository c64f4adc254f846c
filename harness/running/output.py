"""Writing results safely: targets checked before a run, atomic files, one writer per folder.

A run may take minutes; finding out at the end that its results cannot be written
loses them all, so :func:`file_target_problem` and :func:`folder_target_problem`
are asked before any case runs. Files are written whole or not at all
(:func:`write_atomically`: a temporary file in the same folder, then a rename), so
an interrupted or concurrent writer never leaves half a file. Two runs writing
reports into one folder would still mix their files, so a writer holds
:class:`FolderLock` on the folder for as long as it writes there, and a second one
is refused with a message naming the first.
"""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path

LOCK_NAME = ".harness.lock"


def _writable_folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (created if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{folder} is not a directory"
    except OSError as error:
        return f"cannot create {folder}: {error.strerror or error}"
    if not folder.is_dir():
        return f"{folder} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".harness-probe-"):
            pass
    except OSError as error:
        return f"cannot write in {folder}: {error.strerror or error}"
    return None


def file_target_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot receive a results file, or None when it can."""
    target = Path(path)
    if target.is_dir():
        return f"{target} is a directory; give a file name"
    if target.exists() and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return _writable_folder_problem(target.parent if str(target.parent) else Path("."))


def folder_target_problem(path: str | Path) -> str | None:
    """Why reports cannot be written into the folder ``path``, or None when they can."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        return f"{target} exists and is not a directory (give a folder)"
    return _writable_folder_problem(target)


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


class FolderBusy(Exception):
    """Another process holds the folder's lock; str() says which."""


class FolderLock:
    """An exclusive lock on a report folder, held while writing into it.

    ``flock`` on ``FOLDER/.harness.lock``: the kernel releases it when the holder
    exits, however it exits, so a killed run leaves no stale lock behind. The holder
    deletes the file when it is done; a process that locked a file deleted meanwhile
    sees that (the path no longer names the locked file) and tries again.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._descriptor: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(descriptor)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = self._holder()
                raise FolderBusy(f"another harness process{holder} is writing into {self.folder}; wait for "
                                 "it to finish or choose another folder") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(descriptor).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(descriptor)  # the previous holder deleted this file after we opened it
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return self

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return ""
        return f" (pid {pid})" if pid.isdigit() else ""

    def release(self) -> None:
        if self._descriptor is not None:
            try:
                os.unlink(self.path)  # while still locked, so nobody locks a file about to vanish
            except OSError:
                pass
            os.close(self._descriptor)  # closing drops the flock
            self._descriptor = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
