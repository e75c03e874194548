"""One training run per workdir: an exclusive lock on ``WORKDIR/.lock`` for as long as a run trains.

The lock is ``fcntl.flock`` on the file (advisory, whole file, non-blocking): the kernel releases it
when the process exits or dies, so the lock of a dead process never blocks a new run. The holder
writes its process id and host into the file, so a refused run can say who holds it. Readers
(evaluation, export, pose estimation) take no lock: they read the newest complete checkpoint, which
orbax renames into place whole.

Flock locks work between processes on one machine and on most network file systems that support
them (NFSv4, Lustre); on a file system without locks the lock is refused with the system's reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator

LOCK_FILE = ".lock"


class WorkdirInUse(RuntimeError):
    """Another process is training into the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True) -> Iterator[str | None]:
    """Holds the exclusive lock of ``workdir`` (created if absent) for the ``with`` block.

    Yields the lock file's path (``None`` when not ``enabled``: the other processes of a
    multi-process run, whose process 0 holds the lock for all). Raises :class:`WorkdirInUse`
    naming the holder when another process holds it."""
    if not enabled:
        yield None
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OSError(f"{path}: cannot lock the workdir ({err.strerror or err})") from None
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise WorkdirInUse(
                f"{workdir}: another training run holds this workdir ({holder}); wait for it to end "
                "or choose another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
