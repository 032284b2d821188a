"""SQLite queries for claim codes (a mixin of SQLiteStore; see admin.py)."""

from __future__ import annotations

from ..sql import SqlConnection


class ClaimQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    def claim_code(self, code_hash: bytes) -> tuple[int, int, float, str | None] | None:
        """(product_id, customer_id, expires_at, claimed_device) of a code, by its hash."""
        row = self._q.execute(
            "SELECT product_id, customer_id, expires_at, claimed_device FROM claim_codes WHERE code_hash = ?",
            (code_hash,),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), float(row[2]), row[3])

    def insert_claim_code(
        self, code_hash: bytes, product_id: int, customer_id: int, created_at: float, expires_at: float
    ) -> None:
        self._w.execute(
            "INSERT INTO claim_codes (code_hash, product_id, customer_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (code_hash, product_id, customer_id, created_at, expires_at),
        )

    def spend_claim_code(self, code_hash: bytes, device_id: str, at: float) -> None:
        self._w.execute(
            "UPDATE claim_codes SET claimed_device = ?, claimed_at = ? WHERE code_hash = ? AND claimed_device IS NULL",
            (device_id, at, code_hash),
        )
