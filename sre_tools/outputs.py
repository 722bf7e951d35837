"""Writing output files: the one writer behind ``-o``, ``--html`` and ``sre dashboards generate``.

What an output path may be, documented once (README, docs/report.md):

- a missing file or a regular file: written to a temporary file in the same folder, then
  renamed over it, so a reader sees the old file or the new one, never half of one. A new file
  gets the mode a plain ``open`` gives (0666 less the umask); a replaced one keeps its mode;
- a symbolic link: it stays a link, and the file it points to is what gets replaced;
- an existing file that is not a regular file (a character or block device, a FIFO, a socket:
  ``/dev/stdout``, a pipe): opened and written in place, never replaced;
- a folder: refused (:class:`~sre_tools.exceptions.ValidationError`, exit 2);
- a SQLite database (a store) or the same file as one of the command's own inputs (the store, a
  spec, a recording, a kernel log: ``protect``): refused, the file left as it was (exit 2).

A place that cannot be written (no such folder, a file in the way, no permission, a full disk)
is a one-line :class:`~sre_tools.exceptions.SreError` naming the file (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sre_tools.exceptions import SreError, ValidationError

SQLITE_MAGIC = b"SQLite format 3\x00"

Protected = Iterable[str | os.PathLike[str] | None]


def _refuse(path: Path, reason: str, field: str | None) -> ValidationError:
    return ValidationError(f"{path}: {reason}", field=field)


def _cannot_write(path: Path, exc: OSError) -> SreError:
    return SreError(f"{path}: cannot write: {exc.strerror or exc}")


def _same(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same inode when both exist, else the same
    resolved path (an input that does not exist yet, such as a store a command will create)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str], *, field: str | None = None, protect: Protected = ()
) -> os.stat_result | None:
    """Refuse ``path`` as an output (see the module) before any work is done; return its
    ``os.stat`` (following links), or None when it does not exist. ``field`` names the option
    in the message; ``protect`` lists the command's inputs (None and ``-`` are skipped)."""
    target = Path(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a symlink loop, a file used as a folder, no permission
        raise _cannot_write(target, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _refuse(target, "is a directory", field)
    if st is not None and not stat.S_ISREG(st.st_mode):
        return st  # written into, never replaced (a terminal may be input and output at once)
    for source in protect:
        if source is None or os.fspath(source) == "-":
            continue
        if _same(os.fspath(target), os.fspath(source)):
            raise _refuse(
                target,
                f"is also an input of this command ({os.fspath(source)}): not overwritten",
                field,
            )
    if st is not None and _is_sqlite(os.fspath(target)):
        raise _refuse(target, "is a SQLite database (a store): not overwritten", field)
    return st


def is_stdout(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is this process's standard output (``/dev/stdout``, the pipe or terminal
    it points to): a command's "wrote FILE" line then goes to standard error, not into the
    output."""
    try:
        here, out = os.stat(path), os.fstat(1)
    except (OSError, ValueError):
        return False
    return (here.st_dev, here.st_ino) == (out.st_dev, out.st_ino)


def write_text(
    path: str | os.PathLike[str],
    content: str | Callable[[TextIO], object],
    *,
    field: str | None = None,
    protect: Protected = (),
) -> None:
    """Write ``content`` (a string, or a function that writes to the UTF-8 text file it is
    given) to ``path`` as the module describes. An exception from the function leaves a regular
    file as it was and no temporary file behind. ``field`` names the option in errors;
    ``protect`` lists the command's inputs."""
    writer = (lambda fh: fh.write(content)) if isinstance(content, str) else content
    _write(path, writer, binary=False, field=field, protect=protect)


def write_bytes(
    path: str | os.PathLike[str],
    writer: Callable[[BinaryIO], object],
    *,
    field: str | None = None,
    protect: Protected = (),
) -> None:
    """:func:`write_text` for bytes (an archive)."""
    _write(path, writer, binary=True, field=field, protect=protect)


def _write(
    path: str | os.PathLike[str],
    writer: Callable[[Any], object],
    *,
    binary: bool,
    field: str | None,
    protect: Protected,
) -> None:
    target = Path(path)
    st = check_output(target, field=field, protect=protect)
    mode = "wb" if binary else "w"
    encoding = None if binary else "utf-8"
    if st is not None and not stat.S_ISREG(st.st_mode):
        # A device, FIFO or socket (/dev/stdout, a pipe): write into it, never replace it.
        try:
            with open(target, mode, encoding=encoding) as fh:
                writer(fh)
        except OSError as exc:
            raise _cannot_write(target, exc) from None
        return
    # A link stays a link: the file it points to is replaced (in that file's folder).
    real = Path(os.path.realpath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", dir=real.parent)
    except PermissionError as exc:
        if st is None or not os.access(real, os.W_OK):
            raise _cannot_write(target, exc) from None
        # A file we may write in a folder we may not (Grafana's provisioning folder, owned by
        # root): rewritten in place, as a plain open would, instead of refusing.
        try:
            with open(real, mode, encoding=encoding) as fh:
                writer(fh)
        except OSError as err:
            raise _cannot_write(target, err) from None
        return
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    if st is not None:
        file_mode = stat.S_IMODE(st.st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        file_mode = 0o666 & ~umask
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            os.fchmod(fh.fileno(), file_mode)
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                # The file replaced keeps its owner and group (root rewriting Prometheus' rules
                # or Grafana's dashboards must leave them readable to that service), where we
                # may set them; else it is ours, with the old mode.
                with contextlib.suppress(PermissionError):
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
            writer(fh)
        os.replace(tmp, real)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(target, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
