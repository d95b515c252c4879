"""The three ways Jenkins writes a file, which a watcher tells apart.

A file watcher sees a rename, a truncate-and-rewrite or an append: the fake must write exactly as
Jenkins does (AtomicFileWriter, PipelineIOUtils without atomicWrite, the unbuffered console log), so
every file of a home goes through one of these.
"""

from __future__ import annotations

import os
import random
from pathlib import Path


def _atomic_write(path: Path, data: bytes) -> None:
    """AtomicFileWriter: temp file ``<name>-atomic<digits>tmp`` in the same dir, fsync, rename."""
    while True:
        tmp = path.with_name(f"{path.name}-atomic{random.randrange(10**18, 10**19)}tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _inplace_write(path: Path, data: bytes) -> None:
    """PipelineIOUtils with atomicWrite=false: truncate and rewrite in place."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab", buffering=0) as fh:
        fh.write(data)
