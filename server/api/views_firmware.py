"""Firmware and group records to response bodies."""

from __future__ import annotations

from ..store.records import FirmwareRecord, GroupRecord
from .models_firmware import FirmwareOut, GroupOut, UploaderOut
from .views import iso, iso_or_none


def firmware_out(record: FirmwareRecord) -> FirmwareOut:
    _, _, username = record.uploaded_by.partition(":")  # actors are "user:NAME"
    return FirmwareOut(
        product_id=record.product_id,
        version=record.version,
        title=record.title,
        description=record.description,
        name=record.name,
        size=record.size,
        sha256=record.sha256,
        signature=None if record.signature is None else record.signature.hex(),
        platform_id=record.platform_id,
        uploaded_on=iso(record.uploaded_at),
        uploaded_by=UploaderOut(username=username or record.uploaded_by),
        released_at=iso_or_none(record.released_at),
        product_default=record.product_default,
        groups=list(record.groups),
        intelligent=record.intelligent,
    )


def group_out(group: GroupRecord) -> GroupOut:
    return GroupOut(
        name=group.name,
        description=group.description,
        fw_version=group.fw_version,
        intelligent=group.intelligent,
        device_count=group.device_count,
        created_at=iso(group.created_at),
    )
