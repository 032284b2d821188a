"""Who may do what: product permissions per team role, and the token scope each one needs.

A request is allowed when the caller's role grants the permission (a server admin holds every
role's permissions in every product) AND the token carries the permission's scope. Anything
not in these tables is denied.
"""

from __future__ import annotations

from enum import Enum

from ..rules.model import Role


class Perm(Enum):
    PRODUCT_READ = "product_read"  # the product, its team and its customers
    DEVICES_READ = "devices_read"
    AUDIT_READ = "audit_read"
    DEVICE_EDIT = "device_edit"  # name, notes, development flag
    DEVICE_APPROVE = "device_approve"  # out of quarantine or the Denied list
    DEVICE_DENY = "device_deny"
    DEVICE_ADD = "device_add"  # pre-add or import devices the product has not seen
    DEVICE_REMOVE = "device_remove"
    DEVICE_OWNER = "device_owner"
    PRODUCT_EDIT = "product_edit"  # name and policy
    TEAM_EDIT = "team_edit"
    CUSTOMER_CREATE = "customer_create"
    FIRMWARE_READ = "firmware_read"  # firmware versions, their binaries and releases
    FIRMWARE_UPLOAD = "firmware_upload"  # upload and delete versions
    FIRMWARE_RELEASE = "firmware_release"
    GROUPS_EDIT = "groups_edit"  # create and delete device groups
    DEVICE_GROUPS = "device_groups"  # put a device into groups
    DEVICE_FIRMWARE_LOCK = "device_firmware_lock"  # desired_firmware_version
    EVENTS_PUBLISH = "events_publish"  # publish to the product's event stream from the API
    WEBHOOKS_READ = "webhooks_read"  # a webhook's configuration holds its target's credentials
    WEBHOOKS_EDIT = "webhooks_edit"


_VIEW = frozenset({Perm.PRODUCT_READ, Perm.DEVICES_READ, Perm.AUDIT_READ, Perm.FIRMWARE_READ})
_SUPPORT = _VIEW | {Perm.DEVICE_EDIT, Perm.DEVICE_APPROVE, Perm.DEVICE_DENY}
# What ends up in devices' flash: firmware, its releases, and the groups and locks that pick it.
_ROLLOUT = frozenset(
    {Perm.FIRMWARE_UPLOAD, Perm.FIRMWARE_RELEASE, Perm.GROUPS_EDIT, Perm.DEVICE_GROUPS, Perm.DEVICE_FIRMWARE_LOCK}
)
_WEBHOOKS = frozenset({Perm.WEBHOOKS_READ, Perm.WEBHOOKS_EDIT})
_DEVELOPER = (
    _SUPPORT | {Perm.DEVICE_ADD, Perm.DEVICE_REMOVE, Perm.DEVICE_OWNER, Perm.EVENTS_PUBLISH} | _ROLLOUT | _WEBHOOKS
)
_ADMINISTRATOR = _DEVELOPER | {Perm.PRODUCT_EDIT, Perm.TEAM_EDIT, Perm.CUSTOMER_CREATE}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.VIEW_ONLY: _VIEW,
    Role.SUPPORT: _SUPPORT,
    Role.DEVELOPER: _DEVELOPER,
    Role.ADMINISTRATOR: _ADMINISTRATOR,
}

SCOPE_OF: dict[Perm, str] = {
    Perm.PRODUCT_READ: "products:read",
    Perm.DEVICES_READ: "devices:read",
    Perm.AUDIT_READ: "audit:read",
    Perm.DEVICE_EDIT: "devices:write",
    Perm.DEVICE_APPROVE: "devices:write",
    Perm.DEVICE_DENY: "devices:write",
    Perm.DEVICE_ADD: "devices:write",
    Perm.DEVICE_REMOVE: "devices:write",
    Perm.DEVICE_OWNER: "devices:write",
    Perm.PRODUCT_EDIT: "products:write",
    Perm.TEAM_EDIT: "team:write",
    Perm.CUSTOMER_CREATE: "customers:write",
    Perm.FIRMWARE_READ: "firmware:read",
    Perm.FIRMWARE_UPLOAD: "firmware:write",
    Perm.FIRMWARE_RELEASE: "firmware:write",
    Perm.GROUPS_EDIT: "devices:write",
    Perm.DEVICE_GROUPS: "devices:write",
    # Locking a device to a version is a rollout decision, not a device edit.
    Perm.DEVICE_FIRMWARE_LOCK: "firmware:write",
    Perm.EVENTS_PUBLISH: "events:write",
    Perm.WEBHOOKS_READ: "webhooks:read",
    Perm.WEBHOOKS_EDIT: "webhooks:write",
}


def role_allows(role: Role | None, perm: Perm) -> bool:
    return role is not None and perm in ROLE_PERMS[role]


WHAT: dict[Perm, str] = {
    Perm.PRODUCT_READ: "view the product",
    Perm.DEVICES_READ: "view the product's devices",
    Perm.AUDIT_READ: "read the audit trail",
    Perm.DEVICE_EDIT: "edit devices",
    Perm.DEVICE_APPROVE: "approve devices",
    Perm.DEVICE_DENY: "deny devices",
    Perm.DEVICE_ADD: "add devices the product has not seen",
    Perm.DEVICE_REMOVE: "remove devices",
    Perm.DEVICE_OWNER: "assign device owners",
    Perm.PRODUCT_EDIT: "change the product's name or policy",
    Perm.TEAM_EDIT: "change the team",
    Perm.CUSTOMER_CREATE: "create customers",
    Perm.FIRMWARE_READ: "view firmware",
    Perm.FIRMWARE_UPLOAD: "upload or delete firmware",
    Perm.FIRMWARE_RELEASE: "release firmware",
    Perm.GROUPS_EDIT: "create or delete device groups",
    Perm.DEVICE_GROUPS: "change a device's groups",
    Perm.DEVICE_FIRMWARE_LOCK: "lock a device's firmware version",
    Perm.EVENTS_PUBLISH: "publish events",
    Perm.WEBHOOKS_READ: "view webhooks",
    Perm.WEBHOOKS_EDIT: "change webhooks",
}
