"""One device's events, through the index the writer fills in bulk (migration 17).

An index on events (device_id, id) cost most of an event's INSERT: each commit dirtied one index
leaf per device in it. Instead `event_device_index` holds (device, id) for every event up to
`event_index_mark.upto`, and the writer adds the events after it in one sorted INSERT every
INDEX_EVERY events (`index_device_events`, in the appending transaction, which also moves the
mark). A reader takes the indexed events and the unindexed tail after the mark (at most about
INDEX_EVERY rows, scanned by id) in ONE statement, so both halves see one snapshot: every event
is in exactly one of them. The same SQL runs on both engines.
"""

from __future__ import annotations

from ..sql import SqlConnection

INDEX_EVERY = 1024  # events between bulk index updates: the most a reader scans unindexed

EVENT_COLUMNS = (
    *("id", "device_id", "product_id", "name", "data"),
    *("ttl", "private", "published_at", "to_device", "webhooks"),
)


def device_events_sql(
    columns: tuple[str, ...],
    device_id: str,
    *,
    after_id: int = 0,
    before_id: int | None = None,
    conditions: tuple[str, ...] = (),
    condition_args: tuple[object, ...] = (),
    newest_first: bool = False,
    limit: int,
) -> tuple[str, list[object]]:
    """SELECT `columns` of the device's events with after_id < id < before_id that meet every
    condition, in id order (newest first if asked), at most `limit`. A condition names event
    columns other than id and device_id as `{e}column` (e.g. "substr({e}name, 1, ?) = ?")."""
    order = "DESC" if newest_first else "ASC"
    bound_args: list[object] = [after_id] if before_id is None else [after_id, before_id]

    def bounds(table: str) -> str:
        return f"{table}id > ?" + ("" if before_id is None else f" AND {table}id < ?")

    indexed_filter = "".join(f" AND {c.format(e='e.')}" for c in conditions)
    tail_filter = "".join(f" AND {c.format(e='')}" for c in conditions)
    indexed = (
        f"SELECT {', '.join('e.' + c for c in columns)} FROM event_device_index AS x"
        f" JOIN events AS e ON e.id = x.id WHERE x.device_id = ? AND {bounds('x.')}"
        f"{indexed_filter} ORDER BY x.id {order} LIMIT ?"
    )
    tail = (
        f"SELECT {', '.join(columns)} FROM events WHERE id > {_LATER_OF_MARK_AND} AND device_id = ?"
        f"{'' if before_id is None else ' AND id < ?'}{tail_filter} ORDER BY id {order} LIMIT ?"
    )
    sql = f"SELECT * FROM ({indexed}) AS indexed UNION ALL SELECT * FROM ({tail}) AS tail ORDER BY 1 {order} LIMIT ?"
    tail_args = [after_id, after_id, device_id, *bound_args[1:], *condition_args, limit]
    return sql, [device_id, *bound_args, *condition_args, limit, *tail_args, limit]


# The tail's lower bound as ONE expression, so the planner searches the events by id from it
# (given "id > mark AND id > after", it may take either bound: after_id is often 0, a full scan).
_LATER_OF_MARK_AND = "(SELECT CASE WHEN upto > ? THEN upto ELSE ? END FROM event_index_mark)"


def index_device_events(w: SqlConnection) -> int:
    """Inside a write transaction: index every event after the mark and move the mark to the
    last of them. Returns how many were indexed."""
    (last,) = w.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
    (upto,) = w.execute("SELECT upto FROM event_index_mark").fetchone()
    if last <= upto:
        return 0
    added = w.execute(
        "INSERT INTO event_device_index (device_id, id)"
        " SELECT device_id, id FROM events WHERE id > ? AND id <= ? ORDER BY device_id, id",
        (upto, last),
    ).rowcount
    w.execute("UPDATE event_index_mark SET upto = ?", (last,))
    return added


def crosses_index_step(first_id: int, last_id: int) -> bool:
    """Whether appending ids first_id..last_id passed a multiple of INDEX_EVERY: the writer then
    indexes. Deterministic by id, so it needs no counter (and no state per process)."""
    return last_id // INDEX_EVERY != (first_id - 1) // INDEX_EVERY
