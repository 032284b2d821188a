"""The multipart body of a firmware upload (Particle's fields), read with explicit limits."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from ..firmware.image import MAX_FIRMWARE_SIZE
from ..firmware.signing import SigningError, parse_signature
from ..rules.errors import Invalid
from .bodies import is_multipart

# The binary comes as `binary` (Particle's documented field) or `file` (what particle-api-js sends).
BINARY_FIELDS = ("binary", "file")
FIELDS = {*BINARY_FIELDS, "version", "title", "description", "signature", "access_token"}
_MAX_TEXT = 8192  # bytes in a text field; the operation applies the exact limits
_SIGNATURE_FILE = 1024  # a hex or raw signature file is far smaller


@dataclass(frozen=True, slots=True)
class FirmwareUpload:
    data: bytes
    file_name: str
    version: int
    title: str
    description: str
    signature: bytes | None


def _text(value: str | UploadFile | None, field: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise Invalid(f"{field} is required", field)
        return None
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a text field, not a file", field)
    if len(value) > _MAX_TEXT:
        raise Invalid(f"{field} is too long", field)
    return value


async def _signature(value: str | UploadFile | None) -> bytes | None:
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else await value.read(_SIGNATURE_FILE + 1)
    if not raw.strip():  # a form's empty field (a browser sends the console's optional one so): none given
        return None
    try:
        return parse_signature(raw)
    except SigningError as exc:
        raise Invalid(str(exc), "signature") from None


async def read_upload(
    request: Request, max_size: int = MAX_FIRMWARE_SIZE, also: frozenset[str] = frozenset()
) -> FirmwareUpload:
    """`also`: further fields the caller reads itself (the console's `csrf`)."""
    if not is_multipart(request):
        raise Invalid("upload firmware as multipart/form-data with a `binary` file part", "binary")
    form = await request.form()
    unknown = sorted(set(form.keys()) - FIELDS - also)
    if unknown:
        raise Invalid(f"{unknown[0][:64]} is not a field this request takes", unknown[0][:64])
    present = [name for name in BINARY_FIELDS if name in form]
    if len(present) > 1:
        raise Invalid("send the binary once: as `binary` or as `file`, not both", "file")
    binary = form.get(present[0] if present else "binary")
    if not isinstance(binary, UploadFile):
        raise Invalid("a `binary` (or `file`) file part is required", present[0] if present else "binary")
    data = await binary.read(max_size + 1)
    if len(data) > max_size:
        raise Invalid(f"the binary is larger than {max_size} bytes (this server's limit)", "binary")
    version_text = _text(form.get("version"), "version", required=True) or ""
    version = version_text.strip()
    if not (version.isascii() and version.isdigit() and len(version) <= 5):
        raise Invalid("version must be a whole number, 1..65535", "version")
    return FirmwareUpload(
        data=data,
        file_name=binary.filename or "",
        version=int(version),
        title=_text(form.get("title"), "title", required=True) or "",
        description=_text(form.get("description"), "description", required=False) or "",
        signature=await _signature(form.get("signature")),
    )
