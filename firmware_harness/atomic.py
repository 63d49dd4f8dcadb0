"""Write files so a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from firmware_harness.errors import UserError


_created: list[Path] = []  # folders this process made, outermost first: a failed command removes the empty ones


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) or fail with a one-line error that says what to do."""
    path = Path(path)
    missing, level = [], path
    while not level.exists() and not level.is_symlink() and level != level.parent:
        missing.append(level)
        level = level.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create folder {path}: {e.strerror}; choose another output folder") from e
    _created.extend(reversed(missing))
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to folder {path}: permission denied; choose another output folder")
    return path


def remove_empty_created() -> None:
    """After a failed command: remove the folders this process created that hold nothing (or only its lock
    file), innermost first, so that a command that fails leaves no empty folder behind. Never a folder that
    was there before."""
    for folder in reversed(_created):
        try:
            entries = list(folder.iterdir())
            if all(e.name == LOCK_FILE and e.is_file() and not e.is_symlink() for e in entries):
                for entry in entries:
                    entry.unlink()
                folder.rmdir()
        except OSError:  # gone already, or not ours to empty: leave it
            pass
    _created.clear()


def inside(folder: str | os.PathLike, name: str) -> Path:
    """`folder / name` for a writer of a folder of ours (web, bundle, export), refused in one line if `name`
    would leave the folder (absolute, or `..`) or passes through a symbolic link on the way (it could point
    anywhere): what is written stays inside `folder`."""
    folder = Path(folder)
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise UserError(f"{name!r} is not a name inside {folder}; choose a plain file name")
    path = folder
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link; edgedigits writes only inside {folder}: remove the link "
                            f"or choose another output folder")
    return path


def claim_folder(folder: str | os.PathLike, marker: str, command: str) -> Path:
    """Make `folder` ours for `command`'s files: new, empty, or written by it before (its `marker` file), so no
    file of anyone else's is overwritten; one-line UserError otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder for {command}'s files")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
        raise UserError(f"{folder} is not empty and was not written by `{command}`; give a new or empty folder")
    ensure_dir(folder)
    write_text(inside(folder, marker), f"written by `{command}`; it may replace the files here\n")
    return folder


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The temporary name keeps the final suffix, for writers that choose a format by it, and
    holds the writer's process id, so that one left by a killed process is removed next time.
    Only a regular file (or nothing) is replaced: a symbolic link is written through, to the file it
    names; a device, a FIFO or /dev/fd/N (a shell's `>(...)`) gets the finished bytes written in place,
    never a file in its stead. A full disk or a read-only place is a one-line error.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name to write")
    special = path.exists() and not path.is_file()
    if path.is_symlink() and not special:
        path = Path(os.path.realpath(path))
    try:
        if special:
            with tempfile.TemporaryDirectory(prefix="edgedigits-") as scratch:
                tmp_path = Path(scratch) / f"out{path.suffix}"
                yield tmp_path
                with open(path, "wb") as out, open(tmp_path, "rb") as finished:
                    shutil.copyfileobj(finished, out)
            return
        folder = ensure_dir(path.parent)
        _remove_orphans(folder, path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=folder)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
            os.replace(tmp_path, path)
        finally:
            tmp_path.unlink(missing_ok=True)
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        raise UserError(f"cannot write {path}: {e.strerror}; free some space or choose another place to write") from e


def _remove_orphans(folder: Path, path: Path) -> None:
    """Remove temporary files for `path` whose writing process no longer runs (killed with -9)."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(\d+)\.[a-z0-9_]{{8}}\.tmp{re.escape(path.suffix)}")
    for candidate in folder.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"):
        match = pattern.fullmatch(candidate.name)
        if match and not _running(int(match.group(1))) and candidate.is_file() and not candidate.is_symlink():
            candidate.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write `text` (UTF-8) to `path`."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


LOCK_FILE = ".lock"
_held: set[Path] = set()


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold `folder`'s lock file while a command writes there; a second process is refused with who holds it.

    Re-entrant within a process (export's chain trains in the folder it has locked); the lock is
    the kernel's (flock), so a killed holder releases it.
    """
    import fcntl

    folder = ensure_dir(folder).resolve()
    if folder in _held:
        yield folder
        return
    lock_path = folder / LOCK_FILE
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{folder} is in use by {holder}; wait for it to finish, or use another output folder") \
                from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({' '.join(sys.argv[:2])}, since {time.strftime('%H:%M:%S')})\n")
        handle.flush()
        _held.add(folder)
        try:
            yield folder
        finally:
            _held.discard(folder)
