"""Atomic file and directory writes: a reader sees the old content or the new, never half.

A directory is built in a temporary sibling ``.NAME.tmp-WRITER-XXXX`` and published with two
renames: the old ``NAME`` aside to ``.NAME.old-WRITER``, the new one in. A process killed between
the two leaves no ``NAME`` at all; :func:`recover_dir` (run by :func:`atomic_dir` itself and by
the trainer at start) puts the old one back and removes what dead writers left behind::

    .NAME.tmp-WRITER-*   (being written)  ─rename─▶  NAME
    NAME                 (previous)       ─rename─▶  .NAME.old-WRITER  ─▶ removed

WRITER is ``PID.START``: the writing process's ID and its start time (clock ticks since boot, from
``/proc``). A PID alone does not tell a dead writer: after a restart (a container numbers its
processes from 1 again) another live process may hold it, and a leftover judged live is never
restored. A writer is alive only while a process with its PID and its start time runs. Where the
start time is unknown (no ``/proc``), WRITER is the PID alone and any live process with it counts.

What may be replaced is decided before any work, by :func:`check_output_dir`: nothing, an empty
directory, or an output of the same kind; anything else only when the user says so, and never a
directory that holds the command's own input.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from textopia.errors import TextopiaError

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


def _remove(path: Path) -> None:
    """Remove a directory tree or a file (what was at an output's place may be either)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_output_dir(path: str | Path, kind: str, is_kind: Callable[[Path], bool], *, overwrite: bool = False,
                     inputs: Iterable[str | Path] = (), own: Callable[[str], bool] | None = None) -> None:
    """Refuse to write the output directory ``path`` where replacing it would destroy what the
    user did not make.

    ``path`` may be replaced when nothing is there, it is an empty directory, or it holds an
    output of this ``kind`` (``is_kind(path)``) and nothing else (each entry's name ``own``);
    anything else (other files beside an output, a file) only with ``overwrite``. Never when it
    is, or holds, one of ``inputs`` (local paths; URLs are skipped), or the current directory.

    Args:
        kind: what the output is, for the message ("prepared corpus", "checkpoint").
        is_kind: tells an existing directory that holds an output of this kind.
        own: tells the name of an entry that such an output (or its writer's caches) may hold;
            None: any.

    Raises:
        TextopiaError: ``path`` may not be replaced (one line, saying why and what would).
    """
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        if "://" in str(source):
            continue
        source_path = Path(source).resolve()
        if source_path == target or source_path.is_relative_to(target):
            raise TextopiaError(f"{path} holds the input {source}: writing the {kind} there would delete it")
    here = Path.cwd().resolve()
    if here == target or here.is_relative_to(target):
        raise TextopiaError(f"{path} is the folder this command runs in, or holds it: it is never replaced")
    if overwrite or not os.path.lexists(path):
        return
    if not path.is_dir():
        raise TextopiaError(f"{path} is a file, not a {kind}: not replaced (--overwrite replaces it)")
    if next(path.iterdir(), None) is not None and not is_kind(path):
        raise TextopiaError(f"{path} holds files that are not a {kind}: not replaced (--overwrite replaces it)")
    foreign = sorted(entry.name for entry in path.iterdir() if own is not None and not own(entry.name))
    if foreign:
        raise TextopiaError(f"{path} holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, "
                            f"which a {kind} does not: not replaced (--overwrite replaces it)")


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


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat``, field 22), or
    None where that is unknown (no such process, or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # the name in (...) may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def _writer() -> str:
    """This process as its leftovers name it: ``PID.START``, or ``PID`` where the start is unknown."""
    pid = os.getpid()
    start = _process_start(pid)
    return f"{pid}" if start is None else f"{pid}.{start}"


def _writer_alive(pid: int, start: int | None) -> bool:
    """Whether the writer ``PID[.START]`` of a leftover still runs: a process with its PID runs and,
    where both start times are known, started when the writer did."""
    if not _pid_alive(pid):
        return False
    if start is None:
        return True
    now = _process_start(pid)
    return now is None or now == start


def _leftovers(path: Path) -> tuple[list[Path], list[Path]]:
    """``(temporary dirs, old dirs)`` that interrupted writers of ``path`` left, dead writers only."""
    writer = r"(\d+)(?:\.(\d+))?"
    tmp_re = re.compile(rf"^\.{re.escape(path.name)}\.tmp-{writer}-")
    old_re = re.compile(rf"^\.{re.escape(path.name)}\.old-{writer}$")
    tmps, olds = [], []
    if not path.parent.is_dir():
        return tmps, olds
    for entry in path.parent.iterdir():
        for pattern, bucket in ((tmp_re, tmps), (old_re, olds)):
            m = pattern.match(entry.name)
            if m and not _writer_alive(int(m.group(1)), None if m.group(2) is None else int(m.group(2))):
                bucket.append(entry)
    return tmps, olds


def recover_dir(path: str | Path) -> bool:
    """Undo what an interrupted :func:`atomic_dir` left: restore ``path``, remove leftovers.

    If ``path`` is missing and a dead writer's ``.NAME.old-WRITER`` exists (the process died between
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
        _remove(leftover)
        logger.info("removed %s, left by an interrupted save", leftover)
    return restored


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it into place on success.

    On an exception the temporary directory is removed and ``path`` is left as it was. An
    existing ``path`` is replaced: renamed aside, the new one renamed in, the old one removed.
    If the process dies between those two renames, the next :func:`atomic_dir` or
    :func:`recover_dir` of ``path`` restores the old one.

    A symbolic link at ``path`` is followed: the folder it names is replaced, and the link kept.

    Yields:
        the temporary directory to fill.
    """
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    writer = _writer()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{writer}-", dir=path.parent))
    try:
        yield tmp
        _publish_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if os.path.lexists(path):
            old = path.with_name(f".{path.name}.old-{writer}")
            _remove(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)  # put the previous one back; the new one is lost
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _remove(old)


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
