"""Atomic file and directory writes: a reader sees the old content or the new, never half.

A directory is built in a temporary sibling ``.NAME.tmp-PID-XXXX`` and published with two
renames: the old ``NAME`` aside to ``.NAME.old-PID``, the new one in. A process killed between
the two leaves no ``NAME`` at all; :func:`recover_dir` (run by :func:`atomic_dir` itself and by
the trainer at start) puts the old one back and removes what dead writers left behind::

    .NAME.tmp-PID-*   (being written)  ─rename─▶  NAME
    NAME              (previous)       ─rename─▶  .NAME.old-PID  ─▶ removed
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask), not
    the 0600 of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _publish_modes(root: Path) -> None:
    """Give a finished temporary tree the modes a plain mkdir / open would (mkdtemp makes 0700)."""
    umask = _umask()
    os.chmod(root, 0o777 & ~umask)
    for path in root.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: this process is not writing them any more
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _leftovers(path: Path) -> tuple[list[Path], list[Path]]:
    """``(temporary dirs, old dirs)`` that interrupted writers of ``path`` left, dead writers only."""
    tmp_re = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)-")
    old_re = re.compile(rf"^\.{re.escape(path.name)}\.old-(\d+)$")
    tmps, olds = [], []
    if not path.parent.is_dir():
        return tmps, olds
    for entry in path.parent.iterdir():
        for pattern, bucket in ((tmp_re, tmps), (old_re, olds)):
            m = pattern.match(entry.name)
            if m and not _pid_alive(int(m.group(1))):
                bucket.append(entry)
    return tmps, olds


def recover_dir(path: str | Path) -> bool:
    """Undo what an interrupted :func:`atomic_dir` left: restore ``path``, remove leftovers.

    If ``path`` is missing and a dead writer's ``.NAME.old-PID`` exists (the process died between
    the two renames), the newest one is renamed back to ``path``. Then every temporary and old
    directory of dead writers is removed.

    Returns:
        True if ``path`` was restored.
    """
    path = Path(path)
    tmps, olds = _leftovers(path)
    restored = False
    if olds and not path.exists():
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.replace(newest, path)
        olds.remove(newest)
        restored = True
        logger.warning("restored %s from %s, left by an interrupted save", path, newest.name)
    for leftover in tmps + olds:
        shutil.rmtree(leftover, ignore_errors=True)
        logger.info("removed %s, left by an interrupted save", leftover)
    return restored


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it into place on success.

    On an exception the temporary directory is removed and ``path`` is left as it was. An
    existing ``path`` is replaced: renamed aside, the new one renamed in, the old one removed.
    If the process dies between those two renames, the next :func:`atomic_dir` or
    :func:`recover_dir` of ``path`` restores the old one.

    Yields:
        the temporary directory to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        _publish_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)  # put the previous one back; the new one is lost
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that standard JSON can hold: NaN and infinities as None, mappings and
    sequences copied through, and anything else JSON has no type for (paths, dtypes, tensors)
    as its ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
