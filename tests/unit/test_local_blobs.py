"""LocalBlobStore: artifact bytes as files under a root folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.artifacts.blobs import BlobNotFoundError, LocalBlobStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(root: Path) -> LocalBlobStore:
    return LocalBlobStore(root)


@pytest.mark.anyio
async def test_round_trip(store: LocalBlobStore, root: Path) -> None:
    uri = await store.write("hello.txt", b"hello", "text/plain")
    assert uri == (root / "hello.txt").resolve().as_uri()
    assert uri.startswith("file:///")
    assert await store.read(uri) == b"hello"


@pytest.mark.anyio
async def test_nested_dirs_are_created(store: LocalBlobStore, root: Path) -> None:
    uri = await store.write("runs/r1/node a/out.json", b'{"a": 1}', "application/json")
    assert (root / "runs" / "r1" / "node a" / "out.json").read_bytes() == b'{"a": 1}'
    assert await store.read(uri) == b'{"a": 1}'


@pytest.mark.anyio
async def test_overwrite_is_atomic_and_leaves_no_temp_files(
    store: LocalBlobStore, root: Path
) -> None:
    uri = await store.write("d/x.bin", b"first", "application/octet-stream")
    assert await store.write("d/x.bin", b"second", "application/octet-stream") == uri
    assert await store.read(uri) == b"second"
    assert [p.name for p in (root / "d").iterdir()] == ["x.bin"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../escape.txt", "a/../../escape.txt", "a/../b", "a//b", "./a", "a\\b"],
)
async def test_traversal_is_refused(store: LocalBlobStore, tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="blob path"):
        await store.write(path, b"x", "text/plain")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.anyio
async def test_symlink_out_of_root_is_refused(
    store: LocalBlobStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="escapes"):
        await store.write("link/x.txt", b"x", "text/plain")
    with pytest.raises(ValueError, match="escapes"):
        await store.write("link/sub/x.txt", b"x", "text/plain")
    assert list(outside.iterdir()) == []
    (outside / "secret.txt").write_bytes(b"secret")
    with pytest.raises(ValueError, match="outside"):
        await store.read((root / "link" / "secret.txt").as_uri())


@pytest.mark.anyio
@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "gs://bucket/hello.txt",
        "hello.txt",
        "http://example.com/hello.txt",
        "file://otherhost/hello.txt",
    ],
)
async def test_read_outside_root_is_refused(store: LocalBlobStore, uri: str) -> None:
    await store.write("hello.txt", b"hello", "text/plain")
    with pytest.raises(ValueError, match="URI"):
        await store.read(uri)


@pytest.mark.anyio
async def test_read_with_dotdot_out_of_root_is_refused(store: LocalBlobStore, root: Path) -> None:
    (root.parent / "sibling.txt").write_bytes(b"no")
    with pytest.raises(ValueError, match="outside"):
        await store.read(f"file://{store.root}/../sibling.txt")


@pytest.mark.anyio
async def test_read_of_root_itself_is_refused(store: LocalBlobStore) -> None:
    with pytest.raises(ValueError, match="outside"):
        await store.read(store.root.as_uri())


@pytest.mark.anyio
async def test_missing_blob_is_not_found(store: LocalBlobStore) -> None:
    uri = (store.root / "nope" / "missing.txt").as_uri()
    with pytest.raises(BlobNotFoundError) as info:
        await store.read(uri)
    assert info.value.uri == uri


@pytest.mark.anyio
async def test_directory_is_not_a_blob(store: LocalBlobStore) -> None:
    await store.write("dir/x.txt", b"x", "text/plain")
    with pytest.raises(BlobNotFoundError):
        await store.read((store.root / "dir").as_uri())
