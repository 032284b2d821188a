"""Migration 13 of the PostgreSQL store: what cluster mode keeps in the database (docs/CLUSTER.md,
"Cluster mode"). SQLite's migration 13 has the same tables, which stay empty on one node."""

from __future__ import annotations

CLUSTER = """
-- A device's publish bucket as its last session left it, for the node it connects to next.
ALTER TABLE devices ADD COLUMN publish_tokens double precision;
ALTER TABLE devices ADD COLUMN publish_at double precision;

-- Which node holds each device's live session (store/sqlite/live.py, shared by both stores).
CREATE TABLE live_sessions (
    device_id text COLLATE "C" PRIMARY KEY,
    node_id text COLLATE "C" NOT NULL,
    counter bigint NOT NULL,
    privileges bigint NOT NULL,
    product_id bigint,
    since double precision NOT NULL
);
CREATE INDEX live_sessions_by_node ON live_sessions (node_id);
CREATE INDEX live_sessions_by_product ON live_sessions (product_id);

-- Node liveness (cluster/pg/nodes.py): each node stamps its row; the leader sweeps stale ones.
CREATE TABLE IF NOT EXISTS cluster_nodes (
    node_id text COLLATE "C" PRIMARY KEY,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL
);

-- The leader's fencing epoch (cluster/pg/leader.py): bumped on each acquisition of the lock.
CREATE TABLE IF NOT EXISTS cluster_leader (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL,
    node_id text COLLATE "C" NOT NULL,
    since double precision NOT NULL
);
"""
