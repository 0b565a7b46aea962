"""Checks on the files a command reads and writes, done before any work, each failing with one clear line.

* :func:`check_input_file` — exists, is a regular file (not a folder, FIFO or device), not empty, readable;
* :func:`check_output` — everything that can be known about an output before the work: its name
  (length, extension), its folder (exists, writable, a file can really be created and renamed
  there), what it would replace (never a folder or a non-regular file such as ``/dev/null``, never
  one of the inputs — compared by inode, so links and other spellings of the same file count);
* :func:`atomic_output` — the one temp-file-then-rename writer (a temporary file beside the target, renamed
  over it when complete); :func:`atomic_write_bytes` writes bytes with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import HueShiftError, InputError


def kind_of(mode: int) -> str:
    """A file type in words: 'a FIFO (named pipe)', 'a character device', ..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(path: str | os.PathLike, what: str = "file", error: type[InputError] = InputError) -> Path:
    """``path`` as a Path when it is a non-empty regular file this process can read; else ``error``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise error(f"{what} must be a file path (str or Path), got {path!r}")
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {p}; check the path") from None
    except NotADirectoryError:
        raise error(f"{what} not found: {p} (a part of the path is a file, not a folder)") from None
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise error(f"{what} name too long: {str(p)[:60]}...") from None
        raise error(f"cannot read {what} {p}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{p} is a folder, not a {what}; give the path of a {what} inside it")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p} is {kind_of(st.st_mode)}, not a {what}: give a regular file")
    if st.st_size == 0:
        raise error(f"{p} is empty (0 bytes); the copy or download probably failed, get the file again")
    if not os.access(p, os.R_OK):
        raise error(f"cannot read {p}: permission denied; fix its permissions")
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are the same existing file (same device and inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), suffixes: Iterable[str] | None = None,
                 what: str = "output", temp_name: str | None = None, error: type[InputError] = InputError) -> Path:
    """Check before any work that ``path`` can be written and renamed into place; return it as a Path.

    ``suffixes``: the allowed extensions (lower case, with the dot), or None for any. ``temp_name``:
    the name of the temporary file the writer will use beside ``path`` (its length is checked too, and a
    file of that name is created, renamed and deleted to prove the folder takes it). ``inputs``: files
    the output must not be (by inode). Refuses to replace a folder or anything but a regular file.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise error(f"{what} must be a file path (str or Path), got {path!r}")
    p = Path(path)
    if not p.name or p.name in (".", ".."):
        raise error(f"{what} {str(path)!r} names no file: give a file name")
    for src in inputs:
        if same_file(p, src):
            raise error(f"{what} {p} is the input {src}: choose another name (HueShift never overwrites an input)")
    parent = p.parent if str(p.parent) else Path(".")
    limit = name_max(parent) if parent.is_dir() else 255
    for name in (p.name, temp_name):
        if name and len(os.fsencode(name)) > limit:
            raise error(f"{what} name is too long ({len(os.fsencode(name))} bytes with the temporary name; this "
                        f"file system allows {limit}): choose a shorter name")
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise error(f"{what} folder {parent} is not a folder") from None
    except OSError as err:
        raise error(f"cannot use {what} {p}: {err.strerror or err}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{what} {p} is a folder: give a file name inside it")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {p} is {kind_of(st.st_mode)}: HueShift only writes regular files and never "
                        "replaces anything else; choose a file name")
    if suffixes is not None:
        allowed = tuple(suffixes)
        if p.suffix.lower() not in allowed:
            got = f"'{p.suffix}'" if p.suffix else "no extension"
            raise error(f"{what} {p} has {got}: give a name ending in {', '.join(allowed)}")
    if not parent.exists():
        raise error(f"{what} folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise error(f"{what} folder {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{what} folder {parent} is not writable; choose another folder or fix its permissions")
    if st is not None and hasattr(os, "geteuid") and os.geteuid() != 0:
        pst = parent.stat()
        if pst.st_mode & stat.S_ISVTX and os.geteuid() not in (st.st_uid, pst.st_uid):
            raise error(f"{what} {p} belongs to another user in a sticky folder ({parent}): it cannot be replaced; "
                        "choose another name")
    _probe_folder(parent, temp_name or f".{p.name}.partial", p, what, error)
    return p


def _probe_folder(parent: Path, temp_name: str, target: Path, what: str, error: type[InputError]) -> None:
    """Create, rename and delete a small file named like the writer's temporary file: proves the folder
    takes new files and renames (a read-only or pseudo file system, a full disk of inodes, ...)."""
    probe = parent / temp_name
    moved = parent / f".hueshift-probe-{os.getpid()}-{secrets.token_hex(6)}"  # a fresh name: nothing is replaced
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
    except FileExistsError:
        return  # a writer's temporary file is there already (another run?); the writer replaces it
    except OSError as err:
        raise error(f"cannot create files in {what} folder {parent} ({err.strerror or err}); choose another "
                    "folder") from None
    try:
        if not moved.exists():
            os.rename(probe, moved)
            probe = moved
    except OSError as err:
        raise error(f"cannot rename files in {what} folder {parent} ({err.strerror or err}): the finished "
                    f"{target.name} could not be put in place; choose another folder") from None
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, what: str = "output", error: type[HueShiftError] = InputError, *,
                  temp_name: str | None = None) -> Iterator[Path]:
    """The one temp-file-then-rename writer: ``with atomic_output(p) as tmp: write(tmp)``.

    Yields a hidden temporary path beside ``path`` (``temp_name``, default ``.NAME.partial``); when the
    block ends without an exception it is renamed over ``path``. Any failure (full disk, permissions,
    interrupt) leaves ``path`` as it was and no temporary file; an ``OSError`` becomes ``error`` with one
    line naming ``what``.
    """
    p = Path(path)
    tmp = p.with_name(temp_name or f".{p.name}.partial")
    try:
        yield tmp
        os.replace(tmp, p)
    except OSError as err:
        raise error(f"cannot write {what} {p}: {err.strerror or err}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "output",
                       error: type[HueShiftError] = InputError) -> None:
    """Write ``data`` to a hidden temporary file beside ``path`` and rename it over ``path`` when complete
    (:func:`atomic_output`)."""
    with atomic_output(path, what, error) as tmp, open(tmp, "wb") as f:
        f.write(data)
