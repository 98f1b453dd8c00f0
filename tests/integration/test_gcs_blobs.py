"""GcsBlobStore against gcp-storage-emulator, through the real google-cloud-storage client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.cloud import storage

from runner.artifacts.blobs import BlobNotFoundError
from runner.artifacts.gcs import GcsBlobStore, gcs_client_from_env
from tests.gcs_emulator import run_gcs_emulator

BUCKET = "weft-test"


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with run_gcs_emulator(BUCKET) as url:
        yield url


@pytest.fixture
def client(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[storage.Client]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_url)
    client = gcs_client_from_env()
    yield client
    client.close()


@pytest.fixture
def store(client: storage.Client) -> GcsBlobStore:
    return GcsBlobStore(BUCKET, client)


def stored_content_type(client: storage.Client, name: str) -> str:
    blob = client.bucket(BUCKET).blob(name)
    blob.reload()
    content_type: str = blob.content_type
    return content_type


@pytest.mark.anyio
async def test_text_round_trip(store: GcsBlobStore, client: storage.Client) -> None:
    data = "héllo, weft\n".encode()
    uri = await store.write("runs/r1/n1/hello.txt", data, "text/plain; charset=utf-8")
    assert uri == f"gs://{BUCKET}/runs/r1/n1/hello.txt"
    assert await store.read(uri) == data
    # Real GCS keeps the charset parameter; the emulator stores only the media type.
    assert stored_content_type(client, "runs/r1/n1/hello.txt").startswith("text/plain")


@pytest.mark.anyio
async def test_json_round_trip(store: GcsBlobStore, client: storage.Client) -> None:
    # application/json is the content type the emulator's simple upload crashes on.
    data = json.dumps({"title": "report", "rows": [1, 2, 3]}).encode()
    uri = await store.write("reports/a.json", data, "application/json")
    assert uri == f"gs://{BUCKET}/reports/a.json"
    assert await store.read(uri) == data
    assert stored_content_type(client, "reports/a.json") == "application/json"


@pytest.mark.anyio
async def test_large_json_round_trip(store: GcsBlobStore, client: storage.Client) -> None:
    # Above 8 MiB the client switches from a multipart to a resumable upload.
    data = json.dumps({"blob": "x" * (9 * 1024 * 1024)}).encode()
    uri = await store.write("reports/big.json", data, "application/json")
    assert await store.read(uri) == data
    assert stored_content_type(client, "reports/big.json") == "application/json"


@pytest.mark.anyio
async def test_overwrite_replaces_bytes(store: GcsBlobStore) -> None:
    uri = await store.write("over/write.bin", b"first", "application/octet-stream")
    assert await store.write("over/write.bin", b"second", "application/octet-stream") == uri
    assert await store.read(uri) == b"second"


@pytest.mark.anyio
async def test_missing_blob_is_not_found(store: GcsBlobStore) -> None:
    uri = f"gs://{BUCKET}/no/such/blob.txt"
    with pytest.raises(BlobNotFoundError) as info:
        await store.read(uri)
    assert info.value.uri == uri


@pytest.mark.anyio
@pytest.mark.parametrize(
    "uri",
    [
        "gs://another-bucket/reports/a.json",
        f"gs://{BUCKET}-suffix/reports/a.json",
        f"gs://{BUCKET}/",
        f"gs://{BUCKET}",
        f"file:///{BUCKET}/reports/a.json",
        "reports/a.json",
    ],
)
async def test_uri_of_another_bucket_is_refused(store: GcsBlobStore, uri: str) -> None:
    with pytest.raises(ValueError, match="not a gs:// URI"):
        await store.read(uri)


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["", "/abs.txt", "../up.txt", "a/../b.txt", "a//b.txt", "./a"])
async def test_unsafe_path_is_refused(store: GcsBlobStore, path: str) -> None:
    with pytest.raises(ValueError, match="blob path"):
        await store.write(path, b"x", "text/plain")


@pytest.mark.anyio
async def test_emulator_host_without_scheme(
    emulator_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = emulator_url.removeprefix("http://")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    client = gcs_client_from_env()
    try:
        store = GcsBlobStore(BUCKET, client)
        uri = await store.write("schemeless.json", b"{}", "application/json")
        assert await store.read(uri) == b"{}"
    finally:
        client.close()
