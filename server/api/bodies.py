"""Bodies that FastAPI cannot declare for us: routes that take JSON *or* a multipart file
(Particle's import endpoints), and the line formats of those files."""

from __future__ import annotations

import csv
import io
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from ..keyfile import private_key_column
from ..rules.errors import Invalid
from .errors import describe_validation

M = TypeVar("M", bound=BaseModel)

MAX_UPLOAD = 4 * 1024 * 1024  # bytes in one uploaded list of devices or keys
MAX_ROWS = 10_000  # devices per import
_ID_HEADERS = {"id", "device_id", "deviceid", "device id"}


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def json_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    if not raw.strip():
        raise Invalid("a JSON body is required (or a multipart `file`)", "body")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        message, field = describe_validation(exc.errors())
        raise Invalid(message, field) from None


async def upload_text(request: Request, field: str = "file") -> str:
    form = await request.form()
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise Invalid(f"a multipart body needs a `{field}` file part", field)
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise Invalid(f"the file is larger than {MAX_UPLOAD} bytes", field)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the file is not UTF-8 text", field) from None


def _rows(text: str) -> list[list[str]]:
    """Non-empty CSV rows, comments and a header line skipped, at most MAX_ROWS."""
    try:
        rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise Invalid(f"the file is not CSV: {exc}", "file") from None
    rows = [r for r in rows if r and r[0] and not r[0].startswith("#")]
    if rows and rows[0][0].lower() in _ID_HEADERS:
        rows = rows[1:]
    if len(rows) > MAX_ROWS:
        raise Invalid(f"at most {MAX_ROWS} devices per file, got {len(rows)}", "file")
    return rows


def device_ids(text: str) -> list[str]:
    """Device IDs from a CSV whose first column is the ID, or a plain list of one per line."""
    return [row[0] for row in _rows(text)]


def _refuse_private_keys(text: str) -> None:
    column = private_key_column(text)
    if column is not None:
        raise Invalid(
            f"the file holds private keys (column {column[:40]!r}); nothing registered:"
            " upload the public keys (device_id,public_key), never a private key",
            "file",
        )


def key_rows(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(device_id, public_key) rows from `device_id,public_key` CSV, and (line, error) for bad rows."""
    _refuse_private_keys(text)
    good: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    for row in _rows(text):
        if len(row) < 2 or not row[1]:
            bad.append((row[0][:64], "expected two columns: device_id,public_key"))
        else:
            good.append((row[0], row[1]))
    return good, bad


def multipart_or_json(json_schema: dict[str, Any], description: str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads either body itself (the schema must hold no $refs)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    }
