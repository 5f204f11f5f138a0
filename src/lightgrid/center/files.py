"""File workspaces: where jobs run and their outputs land.

A `Workspace` is a directory tree that callers address with relative paths. Every
path stays inside it: absolute paths, ``..``, NUL bytes and symbolic links that lead
out of the root (at any component) are refused. Files are streamed in chunks, never
held whole; uploads go to a temporary file that is renamed into place only when
complete and within the size limit.

Operations work relative to an open descriptor of the parent directory whose real
location has been checked, so a directory swapped for a symbolic link between the
check and the use is caught (on Linux, through ``/proc/self/fd``).

The methods are synchronous; the API calls them in a thread pool.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import secrets
import shutil
import stat as statmod
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from lightgrid.core.errors import Conflict, InvalidRequest, NotFound, TooLarge

CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_UPLOAD = 10 * 1024 ** 3
TAIL_MAX_BYTES = 1024 * 1024
TAIL_MAX_LINES = 100_000

FileType = Literal["file", "dir", "symlink", "other"]

_PROC_FD = "/proc/self/fd"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One directory entry; `path` is relative to the workspace root, `mtime` in UTC."""

    name: str
    path: str
    type: FileType
    size: int
    mtime: datetime


def _file_type(mode: int) -> FileType:
    if statmod.S_ISLNK(mode):
        return "symlink"
    if statmod.S_ISDIR(mode):
        return "dir"
    if statmod.S_ISREG(mode):
        return "file"
    return "other"


class Workspace:
    """A directory tree addressed by relative paths that never leave it.

    `root` is created if missing. `max_upload` caps the size of one written file.
    """

    def __init__(self, root: str | os.PathLike[str], *,
                 max_upload: int = DEFAULT_MAX_UPLOAD) -> None:
        if max_upload < 0:
            raise InvalidRequest("max_upload must not be negative", field="max_upload")
        os.makedirs(root, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.max_upload = max_upload
        self._root_str = str(self.root)

    # -- locating paths ------------------------------------------------------------

    def _parts(self, path: str) -> builtins.list[str]:
        if "\0" in path:
            raise InvalidRequest("the path must not contain NUL bytes", field="path")
        if path.startswith("/") or os.path.isabs(path):
            raise InvalidRequest(f"{path!r}: give a path relative to the workspace, "
                                 "not an absolute one", field="path")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise InvalidRequest(f"{path!r}: the path must not contain '..'", field="path")
        return parts

    def _inside(self, real: str) -> bool:
        return real == self._root_str or real.startswith(self._root_str + os.sep)

    def _check_inside(self, real: str, path: str) -> None:
        if not self._inside(real):
            raise InvalidRequest(f"{path!r} leads outside the workspace through a "
                                 "symbolic link", field="path")

    def _locate(self, path: str, *, follow: bool, must_exist: bool) -> Path:
        """The real path of `path` (not following a final symlink unless `follow`)."""
        parts = self._parts(path)
        full = self.root.joinpath(*parts)
        if follow or not parts:
            real = os.path.realpath(full)
            self._check_inside(real, path)
            located = Path(real)
        else:
            parent = os.path.realpath(full.parent)
            self._check_inside(parent, path)
            located = Path(parent, parts[-1])
        if must_exist and not os.path.lexists(located):
            raise NotFound(f"{path!r}: no such file or directory in the workspace",
                           field="path")
        return located

    def resolve(self, path: str, *, must_exist: bool = True) -> Path:
        """The real absolute path of `path`, symbolic links followed, inside the root.

        Raises `InvalidRequest` (field ``path``) for paths that would leave the
        workspace and `NotFound` for a missing file (unless `must_exist` is false).
        """
        return self._locate(path, follow=True, must_exist=must_exist)

    def _relative(self, real: Path) -> str:
        rel = os.path.relpath(real, self.root)
        return "" if rel == "." else rel

    def _open_dir(self, real_dir: Path, path: str) -> int:
        """Open a directory already checked to be inside; check where the fd really is."""
        try:
            fd = os.open(real_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise _os_error(exc, path) from None
        if os.path.isdir(_PROC_FD):
            try:
                actual = os.readlink(f"{_PROC_FD}/{fd}")
            except OSError:
                actual = str(real_dir)
            if not self._inside(actual):
                os.close(fd)
                self._check_inside(actual, path)
        return fd

    # -- reading -------------------------------------------------------------------

    def _entry(self, located: Path, st: os.stat_result) -> FileEntry:
        return FileEntry(name=located.name if located != self.root else "",
                         path=self._relative(located), type=_file_type(st.st_mode),
                         size=st.st_size,
                         mtime=datetime.fromtimestamp(st.st_mtime, UTC))

    def stat(self, path: str) -> FileEntry:
        """The entry for `path`; a symbolic link is described, not followed."""
        located = self._locate(path, follow=False, must_exist=True)
        try:
            return self._entry(located, os.lstat(located))
        except OSError as exc:
            raise _os_error(exc, path) from None

    def list(self, path: str = "") -> builtins.list[FileEntry]:
        """The entries of a directory, directories first, then by name."""
        located = self._locate(path, follow=True, must_exist=True)
        if not located.is_dir():
            raise InvalidRequest(f"{path!r} is not a directory", field="path")
        entries: builtins.list[FileEntry] = []
        fd = self._open_dir(located, path)
        try:
            with os.scandir(fd) as it:
                for item in it:
                    try:
                        st = item.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while listing
                    entries.append(self._entry(located / item.name, st))
        finally:
            os.close(fd)
        entries.sort(key=lambda e: (e.type != "dir", e.name))
        return entries

    def _open_file(self, path: str) -> int:
        """Open a regular file for reading, following links that stay inside."""
        located = self._locate(path, follow=True, must_exist=True)
        if located == self.root:
            raise InvalidRequest(f"{path!r} is a directory", field="path")
        dfd = self._open_dir(located.parent, path)
        try:
            fd = os.open(located.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                         dir_fd=dfd)
        except OSError as exc:
            raise _os_error(exc, path) from None
        finally:
            os.close(dfd)
        mode = os.fstat(fd).st_mode
        if not statmod.S_ISREG(mode):
            os.close(fd)
            kind = "a directory" if statmod.S_ISDIR(mode) else "not a regular file"
            raise InvalidRequest(f"{path!r} is {kind}", field="path")
        return fd

    def open_read(self, path: str, offset: int = 0) -> Generator[bytes, None, None]:
        """Stream a file from `offset` in chunks of `CHUNK_SIZE` bytes.

        The file is opened (and errors raised) before this returns; close the
        iterator, or read it to the end, to release the file.
        """
        if offset < 0:
            raise InvalidRequest("the offset must not be negative", field="offset")
        handle = os.fdopen(self._open_file(path), "rb", buffering=0)
        handle.seek(offset)

        def chunks() -> Generator[bytes, None, None]:
            with handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk

        return chunks()

    def tail(self, path: str, lines: int, *, max_bytes: int = TAIL_MAX_BYTES) -> bytes:
        """The last `lines` lines of a file, read from its end; at most `max_bytes`."""
        if lines < 0 or lines > TAIL_MAX_LINES:
            raise InvalidRequest(f"lines must be from 0 to {TAIL_MAX_LINES}", field="lines")
        if lines == 0:
            return b""
        with os.fdopen(self._open_file(path), "rb", buffering=0) as handle:
            return tail_of(handle, lines, max_bytes=max_bytes)

    # -- writing -------------------------------------------------------------------

    def _make_parents(self, parts: builtins.list[str], path: str) -> None:
        current = self.root
        for part in parts:
            current = Path(os.path.realpath(current / part))
            self._check_inside(str(current), path)
            try:
                os.mkdir(current)
            except FileExistsError:
                if not current.is_dir():
                    raise Conflict(f"{path!r}: {self._relative(current)!r} is not a "
                                   "directory", field="path") from None

    def write_stream(self, path: str, chunks: Iterable[bytes], *,
                     overwrite: bool = True) -> int:
        """Write `chunks` to `path` and return the number of bytes written.

        The data goes to a temporary file in the same directory, renamed into place
        only when complete. Above `max_upload` bytes this raises `TooLarge` and leaves
        no partial file and any previous file untouched. Parent directories are
        created. With `overwrite` false an existing file raises `Conflict`.
        """
        parts = self._parts(path)
        if not parts:
            raise InvalidRequest("cannot write to the workspace root", field="path")
        self._make_parents(parts[:-1], path)
        located = self._locate(path, follow=False, must_exist=False)
        if located.is_dir() and not located.is_symlink():
            raise Conflict(f"{path!r} is a directory", field="path")
        dfd = self._open_dir(located.parent, path)
        try:
            return self._write_in(dfd, located.name, path, chunks, overwrite)
        finally:
            os.close(dfd)

    def _write_in(self, dfd: int, name: str, path: str, chunks: Iterable[bytes],
                  overwrite: bool) -> int:
        tmp = f".{name[:200]}.{secrets.token_hex(8)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666,
                     dir_fd=dfd)
        total = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    total += len(chunk)
                    if total > self.max_upload:
                        raise TooLarge(f"{path!r} is larger than the upload limit of "
                                       f"{self.max_upload} bytes", field="file")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if overwrite:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            else:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                os.unlink(tmp, dir_fd=dfd)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(exc, FileExistsError):
                raise Conflict(f"{path!r} already exists", field="path") from None
            if isinstance(exc, OSError):
                raise _os_error(exc, path) from None
            raise
        return total

    def mkdir(self, path: str) -> None:
        """Create a directory and its parents; an existing directory is fine."""
        parts = self._parts(path)
        self._make_parents(parts, path)

    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete a file, a symbolic link (not its target) or a directory.

        The root cannot be deleted; a non-empty directory needs `recursive`.
        """
        if not self._parts(path):
            raise InvalidRequest("cannot delete the workspace root", field="path")
        located = self._locate(path, follow=False, must_exist=True)
        if located == self.root:
            raise InvalidRequest("cannot delete the workspace root", field="path")
        dfd = self._open_dir(located.parent, path)
        try:
            st = os.stat(located.name, dir_fd=dfd, follow_symlinks=False)
            if not statmod.S_ISDIR(st.st_mode):
                os.unlink(located.name, dir_fd=dfd)
            elif recursive:
                shutil.rmtree(located.name, dir_fd=dfd)
            else:
                try:
                    os.rmdir(located.name, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise InvalidRequest(f"{path!r} is a directory that is not "
                                             "empty; delete it recursively",
                                             field="path") from None
                    raise
        except OSError as exc:
            raise _os_error(exc, path) from None
        finally:
            os.close(dfd)


def _os_error(exc: OSError, path: str) -> Exception:
    """Translate an OS error on `path` into a domain error (or keep it)."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"{path!r}: no such file or directory in the workspace",
                        field="path")
    if exc.errno == errno.ELOOP:
        return InvalidRequest(f"{path!r}: too many levels of symbolic links", field="path")
    if exc.errno == errno.EISDIR:
        return InvalidRequest(f"{path!r} is a directory", field="path")
    if exc.errno == errno.EEXIST:
        return Conflict(f"{path!r} already exists", field="path")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TooLarge(f"{path!r}: no space left in the workspace", field="file")
    return exc


def tail_of(handle: BinaryIO, lines: int, *, max_bytes: int = TAIL_MAX_BYTES) -> bytes:
    """The last `lines` lines of an open file, reading backwards from its end in chunks
    (never the whole file); at most `max_bytes`."""
    if lines <= 0:
        return b""
    pos = os.fstat(handle.fileno()).st_size
    blocks: list[bytes] = []
    newlines = 0
    read = 0
    while pos > 0 and read < max_bytes:
        size = min(CHUNK_SIZE, pos)
        pos -= size
        handle.seek(pos)
        block = handle.read(size)
        if not blocks and block.endswith(b"\n"):
            newlines -= 1  # the newline ending the last line starts no line
        blocks.append(block)
        read += len(block)
        newlines += block.count(b"\n")
        if newlines >= lines:
            break
    data = b"".join(reversed(blocks))
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    start = end
    for _ in range(lines):
        start = data.rfind(b"\n", 0, start)
        if start < 0:
            break
    tail = data if start < 0 else data[start + 1:]
    return tail[-max_bytes:] if max_bytes else b""


class Workspaces:
    """The file areas under one base directory: one per project, one home per user."""

    def __init__(self, base: str | os.PathLike[str], *,
                 max_upload: int = DEFAULT_MAX_UPLOAD) -> None:
        self.base = Path(base)
        self.max_upload = max_upload

    def _named(self, kind: str, name: str) -> Workspace:
        if not _SAFE_NAME.fullmatch(name):
            raise InvalidRequest(f"{name!r} cannot name a {kind} directory", field=kind)
        return Workspace(self.base / ("projects" if kind == "project" else "home") / name,
                         max_upload=self.max_upload)

    def project(self, project: str) -> Workspace:
        """The workspace of a project (its id or short name)."""
        return self._named("project", project)

    def home(self, user: str) -> Workspace:
        """The home directory of a user."""
        return self._named("user", user)
