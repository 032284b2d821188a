"""Row <-> record helpers shared by the SQLite modules."""

from __future__ import annotations

from typing import Any

from ...rules.model import Owner
from ..records import DeviceRecord

DEVICE_COLUMNS = (
    "device_id, public_key, created_at, owner_kind, owner_id, platform_id, product_id, firmware_version,"
    " firmware_product_id, last_heard, last_handshake_at, online, last_counter, development, name, notes"
)


def paged_by_id(select: str, filters: dict[str, object], after_id: int, limit: int) -> tuple[str, list[object]]:
    """`select` + WHERE id > after_id and column = value for each non-None filter, oldest first.
    Filter names are our column names, never input."""
    sql = select + " WHERE id > ?"
    args: list[object] = [after_id]
    for column, value in filters.items():
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    return sql + " ORDER BY id LIMIT ?", [*args, limit]


def window_by_id(
    select: str,
    filters: dict[str, object],
    *,
    after_id: int = 0,
    before_id: int | None = None,
    limit: int,
    name_prefix: str | None = None,
) -> tuple[str, list[object], bool]:
    """As paged_by_id, or, with `before_id`, the `limit` rows just before it (read newest first:
    the caller reverses them when the third value is True). `name_prefix` keeps rows whose
    `name` starts with it (substr, which both engines spell alike; no LIKE wildcards to escape)."""
    sql = select + " WHERE id > ?"
    args: list[object] = [after_id]
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    for column, value in filters.items():
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    if name_prefix:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(name_prefix), name_prefix]
    order = "DESC" if before_id is not None else "ASC"
    return f"{sql} ORDER BY id {order} LIMIT ?", [*args, limit], before_id is not None


def device_from_row(row: tuple[Any, ...]) -> DeviceRecord:
    (device_id, key, created, owner_kind, owner_id, platform, product, fw, fw_product) = row[:9]
    (heard, handshake, online, counter, development, name, notes) = row[9:]
    return DeviceRecord(
        device_id=device_id,
        public_key=None if key is None else bytes(key),
        created_at=created,
        owner=None if owner_kind is None else Owner(owner_kind, owner_id),
        platform_id=platform,
        product_id=product,
        firmware_version=fw,
        firmware_product_id=fw_product,
        last_heard=heard,
        last_handshake_at=handshake,
        online=bool(online),
        last_counter=counter,
        development=bool(development),
        name=name,
        notes=notes,
    )
