"""Queries for firmware binaries stored by SHA-256 (migration 14), shared by both engines.

A mixin of the stores, like FirmwareQueries. Uploads of the same bytes share one row; the row
goes with the last firmware version that uses it (the `firmware_blob_unused` trigger).
"""

from __future__ import annotations

from ..sql import SqlConnection


class FirmwareBlobQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    def firmware_blob(self, sha256: str) -> bytes | None:
        row = self._q.execute("SELECT data FROM firmware_blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def firmware_blob_digests(self) -> set[str]:
        return {sha256 for (sha256,) in self._q.execute("SELECT sha256 FROM firmware_blobs")}

    def firmware_without_blob(self) -> list[tuple[int, int, str]]:
        rows = self._q.execute(
            "SELECT product_id, version, sha256 FROM firmware f"
            " WHERE NOT EXISTS (SELECT 1 FROM firmware_blobs b WHERE b.sha256 = f.sha256)"
            " ORDER BY product_id, version"
        )
        return [(int(product), int(version), str(sha256)) for (product, version, sha256) in rows]

    def put_firmware_blob(self, sha256: str, data: bytes) -> None:
        self._w.execute(
            "INSERT OR IGNORE INTO firmware_blobs (sha256, size, data) VALUES (?, ?, ?)", (sha256, len(data), data)
        )
