"""An exclusive lock on an output folder, so that one run at a time writes it (collections, evaluations).

The lock is the file ``<folder>/.goldennoise.lock``, locked with ``flock`` and holding its owner's pid, host and start
time. The operating system drops an ``flock`` when its process dies, however it dies, so a lock file left by a killed
run is stale by construction: the next run takes it over and says whose it was. A live owner's lock is refused with a
message naming that owner. Multi-process runs take the lock on one process (rank 0) for the whole run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

LOCK_NAME = ".goldennoise.lock"


class FolderLockedError(ValueError):
    """Another live run holds the folder's lock; the message names the folder and that run's pid and host."""


def _describe(owner: dict) -> str:
    started = owner.get("started")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else ""
    return f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}{since}"


class FolderLock:
    """Hold ``<folder>/.goldennoise.lock`` while a run writes ``folder`` (a context manager).

    Args:
        folder: the folder to lock; created when missing, and removed again on release if the lock created it and
            the run left nothing in it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created_folder = False

    def acquire(self) -> None:
        """Take the lock (at once, or raise).

        Raises:
            FolderLockedError: another live process holds it.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FolderLock.")
        self._created_folder = not self.folder.is_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = self._lock_file()
        previous = _read_owner(fd)
        if previous:
            warnings.warn(f"Taking over the stale lock {self.path} of a run that has ended without releasing it "
                          f"({_describe(previous)}).", stacklevel=2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode(),
                  0)
        self._fd = fd

    def _lock_file(self) -> int:
        """Open and ``flock`` the lock file; retry when the file was replaced between the open and the lock."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise FolderLockedError(f"{self.folder} is in use by another run ({_describe(owner)}); wait for it "
                                        "to finish or choose another folder.") from None
            if _same_file(fd, self.path):
                return fd
            os.close(fd)  # the owner released (and removed) the file after our open: lock the new one

    def release(self) -> None:
        """Remove the lock file and drop the lock (and the folder, if this lock created it and it is empty)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        if self._created_folder:
            try:
                self.folder.rmdir()
            except OSError:
                pass  # the run wrote something: keep it

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_owner(fd: int) -> dict:
    """The owner record in an open lock file (``{}`` when empty or unreadable)."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"pid": "?", "host": "? (unreadable lock file)"}
    return owner if isinstance(owner, dict) else {}
