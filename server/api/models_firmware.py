"""Request and response bodies for product firmware, releases, device groups and locks."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from .models import DeviceUpdate, Request

GroupName = Annotated[StrictStr, Field(max_length=64, json_schema_extra={"pattern": r"^[a-z0-9_-]{1,64}$"})]
FirmwareVersion = Annotated[StrictInt, Field(json_schema_extra={"minimum": 1, "maximum": 65535})]
GroupNames = Annotated[list[GroupName], Field(max_length=256)]


class UploaderOut(BaseModel):
    username: str


class FirmwareOut(BaseModel):
    """Particle's product firmware object, plus what Fleetgate checks and stores."""

    product_id: int
    version: int
    title: str
    description: str
    name: str = Field(description="the uploaded file's name")
    size: int = Field(description="bytes")
    sha256: str = Field(description="SHA-256 of the whole binary, hex")
    signature: str | None = Field(description="detached Ed25519 signature as uploaded, 128 hex characters")
    platform_id: int = Field(description="from the binary's header")
    uploaded_on: str
    uploaded_by: UploaderOut
    released_at: str | None = Field(description="the latest release that left it released; null: not released")
    product_default: bool
    groups: list[str] = Field(description="groups it is released to")
    intelligent: bool


class FirmwareReleaseIn(Request):
    version: FirmwareVersion
    product_default: StrictBool = False
    groups: GroupNames = Field(default_factory=list)
    intelligent: StrictBool = False


class FirmwareInfoIn(Request):
    """Particle's updateProductFirmware; a field left out (or null) stays as it is."""

    title: Annotated[StrictStr, Field(max_length=255)] | None = None
    description: Annotated[StrictStr, Field(max_length=4096)] | None = None


class GroupIn(Request):
    name: GroupName
    description: Annotated[StrictStr, Field(max_length=4096)] = ""


class GroupOut(BaseModel):
    name: str
    description: str
    fw_version: int | None = Field(description="the firmware version released to the group, if any")
    intelligent: bool
    device_count: int
    created_at: str


class GroupEnvelope(BaseModel):
    group: GroupOut


class GroupsOut(BaseModel):
    groups: list[GroupOut]


class DeviceFirmwareUpdate(DeviceUpdate):
    """A device update (PUT .../devices/{id}) that may also set groups or lock the firmware."""

    groups: GroupNames | None = Field(None, description="the device's groups afterwards ([] leaves them all)")
    desired_firmware_version: StrictInt | None = Field(
        None, description="lock the device to this uploaded version; null unlocks"
    )


class ImpactedDeviceOut(BaseModel):
    id: str
    version: int = Field(description="the version it would be offered")


class ReleasePreviewOut(BaseModel):
    """What a release would do, by the same rule that picks each device's firmware."""

    devices: int = Field(description="members whose target would change to a version they do not run")
    sample: list[ImpactedDeviceOut] = Field(description="the first of them, by device ID")
