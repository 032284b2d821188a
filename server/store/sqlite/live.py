"""Live sessions across nodes (cluster mode, docs/CLUSTER.md): which node holds each device's one
live session and with what privileges, so that a device reconnecting to another node closes its
old session, a node's late disconnect never marks offline a device another node holds, a node
resets only its own devices at start-up, and the leader's rollout scheduler sees devices on every
node. A mixin of both stores (the SQL is portable; PostgreSQL runs it through its dialect adapter).
A single node (SQLite) keeps none of this: its registry is the whole truth."""

from __future__ import annotations

from ..sql import SqlConnection


class LiveSessionQueries:
    _w: SqlConnection
    _q: SqlConnection

    def claim_live_session(self, device_id: str, node_id: str, counter: int, at: float) -> str | None:
        """This node now holds the device's session: the node that held it before, if another."""
        row = self._w.execute("SELECT node_id FROM live_sessions WHERE device_id = ?", (device_id,)).fetchone()
        self._w.execute(
            "INSERT INTO live_sessions (device_id, node_id, counter, privileges, product_id, since)"
            " VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (device_id) DO UPDATE SET node_id = excluded.node_id,"
            " counter = excluded.counter, privileges = 0, product_id = NULL, since = excluded.since",
            (device_id, node_id, counter, at),
        )
        previous = None if row is None else str(row[0])
        return previous if previous != node_id else None

    def set_live_privileges(self, device_id: str, node_id: str, privileges: int, product_id: int | None) -> None:
        """The session this node holds was decided (again)."""
        self._w.execute(
            "UPDATE live_sessions SET privileges = ?, product_id = ? WHERE device_id = ? AND node_id = ?",
            (privileges, product_id, device_id, node_id),
        )

    def release_live_session(self, device_id: str, node_id: str) -> bool:
        """The session this node held ended: False if another node holds the device by now."""
        return bool(
            self._w.execute(
                "DELETE FROM live_sessions WHERE device_id = ? AND node_id = ?", (device_id, node_id)
            ).rowcount
        )

    def release_node_sessions(self, node_id: str) -> int:
        """Every session `node_id` held is gone (its start-up, or the sweep of a dead node): its
        devices are offline unless another node holds them. How many were released."""
        self._w.execute(
            "UPDATE devices SET online = 0 WHERE device_id IN (SELECT device_id FROM live_sessions WHERE node_id = ?)",
            (node_id,),
        )
        return int(self._w.execute("DELETE FROM live_sessions WHERE node_id = ?", (node_id,)).rowcount)

    def publish_bucket_of(self, device_id: str) -> tuple[float, float] | None:
        """What the device's publish bucket held when its last session ended: (tokens, at)."""
        row = self._q.execute("SELECT publish_tokens, publish_at FROM devices WHERE device_id = ?", (device_id,))
        found = row.fetchone()
        return None if found is None or found[0] is None else (float(found[0]), float(found[1]))

    def save_publish_bucket(self, device_id: str, tokens: float, at: float) -> None:
        self._w.execute(
            "UPDATE devices SET publish_tokens = ?, publish_at = ? WHERE device_id = ?", (tokens, at, device_id)
        )

    def leader_epoch(self) -> int | None:
        """The cluster leader's fencing epoch (cluster/pg/leader.py); None before any node led."""
        row = self._q.execute("SELECT epoch FROM cluster_leader").fetchone()
        return None if row is None else int(row[0])

    def live_sessions_in(self, product_id: int) -> dict[str, int]:
        """Privileges of the live sessions decided into `product_id`, on any node."""
        rows = self._q.execute("SELECT device_id, privileges FROM live_sessions WHERE product_id = ?", (product_id,))
        return {str(d): int(p) for d, p in rows}
