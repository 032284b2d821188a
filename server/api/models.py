"""Request and response bodies (they are also what /openapi.json documents).

Requests are strict about types (a string is not a boolean) and reject unknown fields, so a
typo comes back as a 400 naming it instead of being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from ..rules.model import Policy, Role

Text = Annotated[StrictStr, Field(max_length=1024)]
# Limits the operations check with their own messages are stated in the schema too (json_schema_extra
# documents without enforcing), so a request the schema allows is never refused for them.
Name = Annotated[
    StrictStr, Field(min_length=1, max_length=254, json_schema_extra={"pattern": r"^[A-Za-z0-9._@+-]{1,254}$"})
]
Password = Annotated[StrictStr, Field(max_length=1024, json_schema_extra={"minLength": 8})]
ProductName = Annotated[StrictStr, Field(max_length=128, json_schema_extra={"minLength": 1, "pattern": r"\S"})]
PRODUCT_SLUG = r"^(?:[a-z][a-z0-9-]{0,62}|[0-9][0-9-]{0,61}[a-z][a-z0-9-]{0,61})$"  # not digits only: an ID
HEX_KEY = r"^[0-9a-fA-F]{64}$"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- errors


class RequestErrorOut(BaseModel):
    error: str = Field(description="what is wrong")
    field: str | None = Field(None, description="the field at fault, when one is")


class AuthErrorOut(BaseModel):
    error: str = Field(description="an OAuth 2.0 error code: invalid_token, insufficient_scope, invalid_grant ...")
    error_description: str
    field: str | None = Field(None, description="on a 400 from /oauth/token: the form field at fault, if one is")


class OkOut(BaseModel):
    ok: bool = True


# ---------------------------------------------------------------------- tokens and users


class TokenOut(BaseModel):
    token_type: str = "bearer"
    access_token: str
    expires_in: int = Field(description="seconds until the access token expires; 0: never")
    refresh_token: str
    scope: str = Field(description="space-separated scopes; * is everything the holder may do")


class AccessTokenOut(BaseModel):
    id: str = Field(description="the first 12 hex characters of the token's SHA-256")
    client: str
    created_at: str
    expires_at: str | None
    scopes: list[str]


class AccessTokensOut(BaseModel):
    tokens: list[AccessTokenOut]


class UserProductOut(BaseModel):
    id: int
    slug: str
    name: str
    role: Role | None = Field(None, description="absent for a server admin who is not on the team")


class MeOut(BaseModel):
    username: str
    admin: bool | None = None
    products: list[UserProductOut] | None = None
    customer: bool | None = None
    product_id: int | None = None


class UserIn(Request):
    username: Name
    password: Password
    admin: StrictBool = False


class UserOut(BaseModel):
    id: int
    username: str
    admin: bool
    created_at: str


class UserEnvelope(BaseModel):
    user: UserOut


# ---------------------------------------------------------------------- products


class ProductIn(Request):
    name: ProductName
    slug: Annotated[StrictStr, Field(max_length=63, json_schema_extra={"pattern": PRODUCT_SLUG})] | None = None
    id: Annotated[StrictInt, Field(json_schema_extra={"minimum": 1, "maximum": 2**31 - 1})] | None = None
    policy: Policy = Policy.QUARANTINE


class ProductUpdate(Request):
    name: ProductName | None = None
    policy: Policy | None = None


class DeviceCounts(BaseModel):
    approved: int
    quarantined: int
    denied: int


class FirmwareCountOut(BaseModel):
    version: int | None = Field(description="the firmware version members run; null: never connected")
    devices: int


class DeviceCountsOut(BaseModel):
    members: int = Field(description="approved devices: the product's members")
    online: int = Field(description="members online now")
    quarantined: int
    denied: int
    firmware: list[FirmwareCountOut] = Field(description="members by the firmware version they run")


class ProductOut(BaseModel):
    id: int
    slug: str
    name: str
    policy: Policy
    created_at: str
    device_counts: DeviceCounts | None = Field(None, description="present on single-product answers")


class ProductEnvelope(BaseModel):
    product: ProductOut


class ProductsOut(BaseModel):
    products: list[ProductOut]


# ---------------------------------------------------------------------- devices


class DeviceOut(BaseModel):
    id: str
    name: str | None
    product_id: int | None
    platform_id: int | None
    firmware_version: int | None
    online: bool
    connected: bool
    last_heard: str | None
    last_handshake_at: str | None
    quarantined: bool
    denied: bool
    development: bool
    groups: list[str]
    notes: str | None
    owner: str | None = Field(description='"user:NAME", "customer:NAME" or null')
    firmware_product_id: int | None = Field(description="the product ID the firmware reported last")
    mismatch: bool = Field(description="the firmware reports a product other than the device's")
    # In single-device answers of a device in a product; null in lists.
    desired_firmware_version: int | None = Field(default=None, description="the version the device is locked to")
    targeted_firmware_release_version: int | None = Field(default=None, description="the version the device should run")
    firmware_target_reason: str | None = Field(default=None, description="which rule chose that version")
    firmware_update_pending: bool | None = Field(default=None, description="it runs another version than that one")


class DevicesMeta(BaseModel):
    total_pages: int


class DevicesOut(BaseModel):
    devices: list[DeviceOut]
    meta: DevicesMeta


class AddDeviceIn(Request):
    id: StrictStr
    move: StrictBool = False


class ImportOut(BaseModel):
    """Particle's camelCase names."""

    updated: int
    updatedDeviceIds: list[str]
    existingDeviceIds: list[str]
    nonmemberDeviceIds: list[str]
    invalidDeviceIds: list[str]
    action: str | None = Field(
        default=None,
        description="one device (JSON): preadded, approved (from quarantine), reapproved (from Denied) or"
        " existing (already a member); null for a file",
    )


class RemoveDeviceIn(Request):
    deny: StrictBool = False


class RemoveDeviceOut(BaseModel):
    ok: bool = True
    action: str = Field(description="denied, removed, or unlisted (a non-member taken off a list)")


class DeviceUpdate(Request):
    development: StrictBool | None = None
    name: Text | None = None
    notes: Text | None = None


class OwnerIn(Request):
    user: Name | None = None
    customer: Name | None = None


# ---------------------------------------------------------------------- provisioning


class ProvisionIn(Request):
    public_key: Annotated[StrictStr, Field(json_schema_extra={"pattern": HEX_KEY})]


class ProvisionOut(BaseModel):
    ok: bool = True
    id: str


class ProvisionRow(Request):
    id: StrictStr
    public_key: StrictStr


class ProvisionBatchIn(Request):
    devices: Annotated[list[ProvisionRow], Field(max_length=10_000)]


class ProvisionError(BaseModel):
    id: str
    error: str


class ProvisionBatchOut(BaseModel):
    registered: list[str]
    errors: list[ProvisionError]


# ---------------------------------------------------------------------- team, customers, audit


class TeamMemberOut(BaseModel):
    username: str
    role: Role


class TeamOut(BaseModel):
    team: list[TeamMemberOut]


class TeamMemberIn(Request):
    username: Name
    # particle-api-js's inviteTeamMember sends no role: a new member then gets the
    # least-privileged one (deny by default), a member keeps theirs.
    role: Role | None = None


class TeamMemberEnvelope(BaseModel):
    member: TeamMemberOut


class CustomerIn(Request):
    username: Name
    password: Password


class CustomerOut(BaseModel):
    id: int
    username: str
    created_at: str


class CustomerEnvelope(BaseModel):
    customer: CustomerOut


class CustomersOut(BaseModel):
    customers: list[CustomerOut]


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    device_id: str | None
    reason: str
    detail: dict[str, Any]


class AuditListOut(BaseModel):
    audit: list[AuditOut]
