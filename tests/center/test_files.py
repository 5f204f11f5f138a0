"""Workspaces of lightgrid.center.files: containment, streaming, uploads, deletion, tail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from lightgrid.center.files import CHUNK_SIZE, Workspace, Workspaces
from lightgrid.core.errors import Conflict, InvalidRequest, NotFound, TooLarge


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    w = Workspace(root, max_upload=1000)
    (root / "sub").mkdir()
    (root / "sub" / "data.txt").write_bytes(b"hello")
    (root / "top.txt").write_bytes(b"top")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    return w


def test_root_is_created(tmp_path: Path) -> None:
    Workspace(tmp_path / "a" / "b", max_upload=1)
    assert (tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize("path", [
    "../x", "a/../../x", "sub/../top.txt", "..", "/etc/passwd", "/", "sub/\0x",
])
def test_traversal_is_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ws.resolve(path)
    assert info.value.field == "path"


def test_symlink_to_outside_is_refused(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside", ws.root / "out")
    os.symlink(tmp_path / "outside" / "secret", ws.root / "sub" / "leak")
    os.symlink("../../outside", ws.root / "sub" / "rel")
    for path in ["out", "out/secret", "sub/leak", "sub/rel/secret", "out/new.txt"]:
        with pytest.raises(InvalidRequest, match="outside the workspace") as info:
            ws.resolve(path, must_exist=False)
        assert info.value.field == "path"
    with pytest.raises(InvalidRequest):
        list(ws.open_read("sub/leak"))
    with pytest.raises(InvalidRequest):
        ws.list("out")
    with pytest.raises(InvalidRequest):
        ws.write_stream("out/x", [b"x"])
    with pytest.raises(InvalidRequest):
        ws.mkdir("out/d")
    assert os.listdir(tmp_path / "outside") == ["secret"]


def test_symlink_pointing_inside_is_allowed(ws: Workspace) -> None:
    os.symlink("sub", ws.root / "link")
    os.symlink("../top.txt", ws.root / "sub" / "up")
    assert ws.resolve("link/data.txt") == ws.root / "sub" / "data.txt"
    assert b"".join(ws.open_read("sub/up")) == b"top"
    assert [e.name for e in ws.list("link")] == ["data.txt", "up"]


def test_missing_file_is_not_found(ws: Workspace) -> None:
    for call in (lambda: ws.resolve("nope"), lambda: ws.stat("sub/nope"),
                 lambda: ws.open_read("nope"), lambda: ws.list("nope"),
                 lambda: ws.delete("nope"), lambda: ws.tail("nope", 1)):
        with pytest.raises(NotFound):
            call()


def test_resolve_root_and_dot_paths(ws: Workspace) -> None:
    assert ws.resolve("") == ws.root
    assert ws.resolve("./sub/./data.txt") == ws.root / "sub" / "data.txt"
    assert ws.resolve("sub//data.txt") == ws.root / "sub" / "data.txt"


def test_listing_dirs_first_with_types(ws: Workspace) -> None:
    (ws.root / "b.txt").write_bytes(b"12345")
    (ws.root / "a_dir").mkdir()
    os.symlink("top.txt", ws.root / "c_link")
    entries = ws.list()
    assert [(e.name, e.type) for e in entries] == [
        ("a_dir", "dir"), ("sub", "dir"), ("b.txt", "file"), ("c_link", "symlink"),
        ("top.txt", "file")]
    b = next(e for e in entries if e.name == "b.txt")
    assert (b.size, b.path) == (5, "b.txt")
    assert b.mtime.tzinfo == UTC
    assert [e.path for e in ws.list("sub")] == ["sub/data.txt"]


def test_list_of_a_file_is_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="not a directory"):
        ws.list("top.txt")


def test_stat(ws: Workspace) -> None:
    entry = ws.stat("sub/data.txt")
    assert (entry.name, entry.path, entry.type, entry.size) == (
        "data.txt", "sub/data.txt", "file", 5)
    assert ws.stat("sub").type == "dir"


def test_streaming_a_file_larger_than_a_chunk(ws: Workspace) -> None:
    data = os.urandom(CHUNK_SIZE * 3 + 17)
    (ws.root / "big.bin").write_bytes(data)
    chunks = list(ws.open_read("big.bin"))
    assert [len(c) for c in chunks] == [CHUNK_SIZE] * 3 + [17]
    assert b"".join(chunks) == data
    assert b"".join(ws.open_read("big.bin", offset=CHUNK_SIZE + 5)) == data[CHUNK_SIZE + 5:]
    assert list(ws.open_read("big.bin", offset=len(data) + 10)) == []


def test_open_read_refuses_directories_and_bad_offsets(ws: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="directory"):
        ws.open_read("sub")
    with pytest.raises(InvalidRequest, match="directory"):
        ws.open_read("")
    with pytest.raises(InvalidRequest, match="offset"):
        ws.open_read("top.txt", offset=-1)


def test_open_read_refuses_a_fifo_without_blocking(ws: Workspace) -> None:
    os.mkfifo(ws.root / "fifo")
    with pytest.raises(InvalidRequest, match="not a regular file"):
        ws.open_read("fifo")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


@pytest.mark.parametrize(("sizes", "ok"), [
    ([1000], True),              # exactly the limit
    ([400, 600], True),
    ([1001], False),             # one byte over
    ([500, 500, 1], False),
])
def test_upload_limit(ws: Workspace, sizes: list[int], ok: bool) -> None:
    chunks = [b"x" * n for n in sizes]
    if ok:
        assert ws.write_stream("up/file.bin", chunks) == sum(sizes)
        assert (ws.root / "up" / "file.bin").read_bytes() == b"".join(chunks)
    else:
        with pytest.raises(TooLarge, match="upload limit of 1000 bytes"):
            ws.write_stream("up/file.bin", chunks)
        assert not (ws.root / "up" / "file.bin").exists()
    assert _leftovers(ws.root / "up") == []


def test_refused_upload_leaves_old_content(ws: Workspace) -> None:
    with pytest.raises(TooLarge):
        ws.write_stream("top.txt", [b"y" * 999, b"yy"])
    assert (ws.root / "top.txt").read_bytes() == b"top"
    assert _leftovers(ws.root) == []


def test_over_limit_upload_stops_reading_the_stream(ws: Workspace) -> None:
    consumed = []

    def stream() -> Iterator[bytes]:
        for i in range(100):
            consumed.append(i)
            yield b"z" * 600

    with pytest.raises(TooLarge):
        ws.write_stream("f", stream())
    assert len(consumed) == 2


def test_failing_stream_leaves_no_partial_file(ws: Workspace) -> None:
    def stream() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        ws.write_stream("top.txt", stream())
    assert (ws.root / "top.txt").read_bytes() == b"top"
    assert _leftovers(ws.root) == []


def test_overwrite_and_no_overwrite(ws: Workspace) -> None:
    assert ws.write_stream("top.txt", [b"new"]) == 3
    assert (ws.root / "top.txt").read_bytes() == b"new"
    with pytest.raises(Conflict):
        ws.write_stream("top.txt", [b"other"], overwrite=False)
    assert (ws.root / "top.txt").read_bytes() == b"new"
    assert ws.write_stream("fresh.txt", [b"a"], overwrite=False) == 1
    assert _leftovers(ws.root) == []


def test_write_replaces_a_symlink_rather_than_its_target(ws: Workspace) -> None:
    os.symlink("top.txt", ws.root / "link")
    ws.write_stream("link", [b"via"])
    assert not (ws.root / "link").is_symlink()
    assert (ws.root / "top.txt").read_bytes() == b"top"


@pytest.mark.parametrize(("path", "error"), [
    ("", InvalidRequest), ("sub", Conflict), ("top.txt/x", Conflict),
])
def test_write_refusals(ws: Workspace, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        ws.write_stream(path, [b"x"])


def test_mkdir(ws: Workspace) -> None:
    ws.mkdir("a/b/c")
    assert (ws.root / "a" / "b" / "c").is_dir()
    ws.mkdir("a/b")  # existing directory: fine
    with pytest.raises(Conflict):
        ws.mkdir("top.txt")


def test_delete_rules(ws: Workspace, tmp_path: Path) -> None:
    for root_path in ("", ".", "./"):
        with pytest.raises(InvalidRequest, match="workspace root"):
            ws.delete(root_path, recursive=True)
    with pytest.raises(InvalidRequest, match="not empty"):
        ws.delete("sub")
    assert (ws.root / "sub" / "data.txt").exists()
    ws.delete("sub", recursive=True)
    assert not (ws.root / "sub").exists()
    ws.mkdir("empty")
    ws.delete("empty")
    assert not (ws.root / "empty").exists()
    ws.delete("top.txt")
    assert not (ws.root / "top.txt").exists()


def test_delete_symlink_removes_only_the_link(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside", ws.root / "out")
    os.symlink("sub", ws.root / "in")
    ws.delete("out")
    ws.delete("in", recursive=True)
    assert (tmp_path / "outside" / "secret").exists()
    assert (ws.root / "sub" / "data.txt").exists()
    assert sorted(os.listdir(ws.root)) == ["sub", "top.txt"]


@pytest.mark.parametrize(("content", "lines", "expected"), [
    (b"a\nb\nc\n", 2, b"b\nc\n"),
    (b"a\nb\nc", 2, b"b\nc"),
    (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
    (b"a\nb\nc\n", 10, b"a\nb\nc\n"),
    (b"a\nb\nc\n", 0, b""),
    (b"", 5, b""),
    (b"\n\n\n", 2, b"\n\n"),
    (b"only", 1, b"only"),
])
def test_tail_small(ws: Workspace, content: bytes, lines: int, expected: bytes) -> None:
    (ws.root / "f").write_bytes(content)
    assert ws.tail("f", lines) == expected


def test_tail_big_file(ws: Workspace) -> None:
    rows = [f"line {i}\n".encode() for i in range(100_000)]
    (ws.root / "big.log").write_bytes(b"".join(rows))
    assert ws.tail("big.log", 3) == b"".join(rows[-3:])
    assert ws.tail("big.log", 20_000) == b"".join(rows[-20_000:])


def test_tail_caps_bytes_for_huge_lines(ws: Workspace) -> None:
    (ws.root / "one").write_bytes(b"x" * (3 * CHUNK_SIZE) + b"\nend\n")
    assert ws.tail("one", 2, max_bytes=100) == b"x" * 95 + b"\nend\n"


def test_huge_sparse_file_is_never_read_whole(ws: Workspace) -> None:
    path = ws.root / "sparse"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 ** 3)  # 64 GiB of holes: reading it whole would not finish
        f.seek(64 * 1024 ** 3)
        f.write(b"\nlast\n")
    assert ws.tail("sparse", 1) == b"last\n"
    assert len(ws.tail("sparse", 2)) == 1024 * 1024
    stream = ws.open_read("sparse")
    assert next(stream) == bytes(CHUNK_SIZE)
    stream.close()


def test_tail_refuses_bad_line_counts(ws: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="lines"):
        ws.tail("top.txt", -1)


def test_workspaces_per_project_and_user(tmp_path: Path) -> None:
    spaces = Workspaces(tmp_path, max_upload=10)
    project = spaces.project("proj-1")
    home = spaces.home("alice")
    assert project.root == (tmp_path / "projects" / "proj-1").resolve()
    assert home.root == (tmp_path / "home" / "alice").resolve()
    assert project.max_upload == 10
    for bad in ("..", "a/b", "", ".hidden"):
        with pytest.raises(InvalidRequest):
            spaces.home(bad)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_directory_swapped_for_a_symlink_after_the_check_is_caught(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws.root / "sub" / "data.txt").unlink()
    (ws.root / "sub").rmdir()
    os.symlink(tmp_path / "outside", ws.root / "sub")
    # The check saw the directory that was there before the swap.
    monkeypatch.setattr(os.path, "realpath", lambda p, **kw: os.path.abspath(p))
    with pytest.raises(InvalidRequest, match="outside the workspace"):
        ws.open_read("sub/secret")
    with pytest.raises(InvalidRequest, match="outside the workspace"):
        ws.delete("sub/secret")
    with pytest.raises(InvalidRequest, match="outside the workspace"):
        ws.write_stream("sub/secret", [b"overwritten"])
    assert (tmp_path / "outside" / "secret").read_bytes() == b"secret"
