"""Artifacts: bytes in a blob store (GCS or a local folder) plus a row in PostgreSQL."""

from __future__ import annotations

from uuid import UUID, uuid4

from blocks.context import StoredArtifact
from runner.artifacts.blobs import BlobNotFoundError, BlobStore
from runner.errors import ArtifactNotFoundError
from runner.records import Artifact
from runner.store.protocol import Store


class Artifacts:
    """The ArtifactStore blocks write through, and the reader behind GET /artifacts/{id}."""

    def __init__(self, blobs: BlobStore, store: Store) -> None:
        self.blobs = blobs
        self._store = store

    async def put(
        self, *, run_id: UUID, node_id: str, path: str, data: bytes, content_type: str
    ) -> StoredArtifact:
        uri = await self.blobs.write(path, data, content_type)
        artifact = await self._store.insert_artifact(
            artifact_id=uuid4(),
            run_id=run_id,
            node_id=node_id,
            uri=uri,
            size=len(data),
            content_type=content_type,
        )
        return StoredArtifact(artifact.id, artifact.uri, artifact.size, artifact.content_type)

    def without_rows(self) -> UnrecordedArtifacts:
        """An ArtifactStore that writes the bytes but records no row (outside any run)."""
        return UnrecordedArtifacts(self.blobs)

    async def read(self, artifact_id: UUID) -> tuple[Artifact, bytes]:
        artifact = await self._store.get_artifact(artifact_id)
        try:
            data = await self.blobs.read(artifact.uri)
        except BlobNotFoundError as exc:
            raise ArtifactNotFoundError(
                f"artifact {artifact_id} is recorded but its content at {artifact.uri} is gone"
            ) from exc
        return artifact, data


class UnrecordedArtifacts:
    """Writes artifacts' bytes to the blob store without a row: for a node tried outside a
    run (no run holds them, so GET /artifacts/{id} does not know them)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def put(
        self, *, run_id: UUID, node_id: str, path: str, data: bytes, content_type: str
    ) -> StoredArtifact:
        uri = await self._blobs.write(path, data, content_type)
        return StoredArtifact(uuid4(), uri, len(data), content_type)
