"""Product firmware over HTTP: upload, list, show, download, delete and release, with every
bad input answered by a 4xx naming the field."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import trio

from firmware_sim import firmware
from server.firmware.image import MAX_FIRMWARE_SIZE
from server.firmware.signing import generate_key, public_key_hex, sign, verify

from .conftest import Api, start_api

P = 4201


def binary(version: int = 1, size: int = 5000, product: int = P, platform: int = 6) -> bytes:
    return firmware.build(product, version, size, platform_id=platform)


async def upload(api: Api, data: bytes, token: str | None = None, product: int | str = P, **form: Any) -> Any:
    fields = {"version": "1", "title": "first", **form}
    files = {"binary": ("lamp.bin", data, "application/octet-stream")}
    return await api.call("POST", f"/v1/products/{product}/firmware", token, data=fields, files=files)


async def released(api: Api, body: dict[str, Any], token: str | None = None) -> Any:
    return await api.call("PUT", f"/v1/products/{P}/firmware/release", token, json=body)


@pytest.fixture
async def product(api: Api) -> dict[str, Any]:
    return await api.product("Lamp", P)


async def test_upload_list_show_download_and_delete(api: Api, product: dict[str, Any]) -> None:
    data = binary(1, 70_000, platform=12)
    key = generate_key()
    signature = sign(data, key)
    response = await upload(api, data, description="the first one", signature=signature.hex())
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["version"] == 1 and record["title"] == "first" and record["description"] == "the first one"
    assert record["size"] == 70_000 and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["platform_id"] == 12 and record["name"] == "lamp.bin" and record["product_id"] == P
    assert record["signature"] == signature.hex() and record["uploaded_by"] == {"username": "admin"}
    assert record["released_at"] is None and not record["product_default"] and record["groups"] == []
    assert record["uploaded_on"].endswith("Z")

    assert await api.ok("GET", f"/v1/products/{P}/firmware") == [record]
    assert await api.ok("GET", "/v1/products/lamp/firmware/1") == record  # by slug too

    download = await api.call("GET", f"/v1/products/{P}/firmware/1/binary")
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-firmware-sha256"] == record["sha256"]
    assert verify(download.content, bytes.fromhex(record["signature"]), bytes.fromhex(public_key_hex(key)))
    # In the store (every node serves it), and this node's copy of it (node_cache.py).
    store = api.server.ctx.store.sync
    assert store.firmware_blob(record["sha256"]) == data
    stored = api.data_dir / "firmware-cache" / f"{record['sha256']}.bin"
    assert stored.read_bytes() == data

    assert (await api.ok("DELETE", f"/v1/products/{P}/firmware/1")) == {"ok": True}
    assert not stored.exists() and store.firmware_blob(record["sha256"]) is None
    for path in (f"/v1/products/{P}/firmware/1", f"/v1/products/{P}/firmware/1/binary"):
        gone = await api.call("GET", path)
        assert gone.status_code == 404 and gone.json()["field"] == "version"
    again = await api.call("DELETE", f"/v1/products/{P}/firmware/1")
    assert again.status_code == 404
    actions = [a["action"] for a in (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]]
    assert actions[-2:] == ["firmware_uploaded", "firmware_deleted"]


async def test_signatures_as_files_raw_or_hex(api: Api, product: dict[str, Any]) -> None:
    data = binary(1)
    signature = sign(data, generate_key())
    files = {
        "binary": ("fw.bin", data, "application/octet-stream"),
        "signature": ("fw.bin.sig", signature, "application/octet-stream"),
    }
    raw = await api.call("POST", f"/v1/products/{P}/firmware", data={"version": "1", "title": "t"}, files=files)
    assert raw.status_code == 201 and raw.json()["signature"] == signature.hex()
    files["binary"] = ("fw.bin", binary(2), "application/octet-stream")
    files["signature"] = ("fw.bin.sig", signature.hex().encode() + b"\n", "text/plain")
    hexed = await api.call("POST", f"/v1/products/{P}/firmware", data={"version": "2", "title": "t"}, files=files)
    assert hexed.status_code == 201 and hexed.json()["signature"] == signature.hex()
    unsigned = await upload(api, binary(3), version="3")
    assert unsigned.status_code == 201 and unsigned.json()["signature"] is None
    # A form's empty optional field, as a browser sends the console's: no signature, not a bad one.
    blank = await upload(api, binary(4), version="4", signature="")
    assert blank.status_code == 201 and blank.json()["signature"] is None
    files = {"binary": ("fw.bin", binary(5), "application/octet-stream"), "signature": ("", b"", "text/plain")}
    no_file = await api.call("POST", f"/v1/products/{P}/firmware", data={"version": "5", "title": "t"}, files=files)
    assert no_file.status_code == 201 and no_file.json()["signature"] is None


GOOD = binary(1)


@pytest.mark.parametrize(
    ("data", "form", "field"),
    [
        (GOOD, {"version": ""}, "version"),
        (GOOD, {"version": "one"}, "version"),
        (GOOD, {"version": "0"}, "version"),
        (GOOD, {"version": "65536"}, "version"),
        (GOOD, {"version": "-1"}, "version"),
        (GOOD, {"title": ""}, "title"),
        (GOOD, {"title": "   "}, "title"),
        (GOOD, {"title": "x" * 256}, "title"),
        (GOOD, {"description": "x" * 4097}, "description"),
        (GOOD, {"signature": "abcd"}, "signature"),
        (GOOD, {"signature": "zz" * 64}, "signature"),
        (GOOD, {"colour": "red"}, "colour"),
        (binary(2), {}, "version"),  # the header says version 2
        (binary(1, product=P + 1), {}, "binary"),  # built for another product
        (b"\x7fELF" + GOOD[4:], {}, "binary"),
        (GOOD[:-10], {}, "binary"),
        (GOOD[:20], {}, "binary"),
        (b"", {}, "binary"),
        (GOOD + b"extra", {}, "binary"),
    ],
)
async def test_bad_uploads_name_the_field(
    api: Api, product: dict[str, Any], data: bytes, form: dict[str, str], field: str
) -> None:
    response = await upload(api, data, **form)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field, response.json()
    assert await api.ok("GET", f"/v1/products/{P}/firmware") == []
    assert api.server.ctx.store.sync.firmware_blob_digests() == set()  # nothing of it stored
    assert not (api.data_dir / "firmware-cache").exists()  # nor copied


async def test_malformed_upload_bodies(api: Api, product: dict[str, Any]) -> None:
    path = f"/v1/products/{P}/firmware"
    as_json = await api.call("POST", path, json={"version": 1, "title": "t"})
    assert as_json.status_code == 400 and as_json.json()["field"] == "binary"
    no_file = await api.call("POST", path, files={"version": (None, "1"), "title": (None, "t")})
    assert no_file.status_code == 400 and no_file.json()["field"] == "binary"
    text_binary = await api.call("POST", path, files={"binary": (None, "abc"), "version": (None, "1")})
    assert text_binary.status_code == 400 and text_binary.json()["field"] == "binary"
    no_title = await api.call("POST", path, files={"binary": ("f", GOOD), "version": (None, "1")})
    assert no_title.status_code == 400 and no_title.json()["field"] == "title"
    file_version = await api.call(
        "POST", path, files={"binary": ("f", GOOD), "version": ("v", b"1"), "title": (None, "t")}
    )
    assert file_version.status_code == 400 and file_version.json()["field"] == "version"


async def test_duplicate_versions_conflict_and_keep_the_first(api: Api, product: dict[str, Any]) -> None:
    first = (await upload(api, binary(1, 4000))).json()
    duplicate = await upload(api, binary(1, 6000))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "version"
    same = await upload(api, binary(1, 4000))
    assert same.status_code == 409
    assert await api.ok("GET", f"/v1/products/{P}/firmware") == [first]
    # The refused upload's binary went with its transaction: neither stored nor copied.
    assert api.server.ctx.store.sync.firmware_blob_digests() == {first["sha256"]}
    assert [p.name for p in (api.data_dir / "firmware-cache").iterdir()] == [f"{first['sha256']}.bin"]


async def test_the_size_limit(api: Api, product: dict[str, Any]) -> None:
    largest = binary(1, MAX_FIRMWARE_SIZE)
    response = await upload(api, largest)
    assert response.status_code == 201 and response.json()["size"] == MAX_FIRMWARE_SIZE
    too_large = await upload(api, binary(2, MAX_FIRMWARE_SIZE + 1), version="2")
    assert too_large.status_code == 400 and too_large.json()["field"] == "binary"
    assert "larger than" in too_large.json()["error"]


async def test_the_size_limit_is_the_servers_to_set(tmp_path: Path, nursery: trio.Nursery) -> None:
    small = await start_api(tmp_path, nursery, max_firmware_size=100_000)
    async with small.http:
        await small.ok("POST", "/v1/products", json={"name": "Lamp", "id": P})
        assert (await upload(small, binary(1, 100_000))).status_code == 201
        too_large = await upload(small, binary(2, 100_001), version="2")
        assert too_large.status_code == 400 and too_large.json()["field"] == "binary"
        assert "100000 bytes" in too_large.json()["error"]
        listed = await small.ok("GET", f"/v1/products/{P}/firmware")
        assert [f["version"] for f in listed] == [1]  # nothing of the refused upload is kept
    small.server.shutdown()


async def test_release_to_the_default_and_groups(api: Api, product: dict[str, Any]) -> None:
    for version in (1, 2, 3):
        assert (await upload(api, binary(version), version=str(version))).status_code == 201
    for name in ("beta", "eu"):
        assert (await api.call("POST", f"/v1/products/{P}/groups", json={"name": name})).status_code == 201

    one = await released(api, {"version": 1, "product_default": True, "groups": ["beta"], "intelligent": True})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["product_default"] and body["groups"] == ["beta"] and body["intelligent"] and body["released_at"]

    two = (await released(api, {"version": 2, "product_default": True})).json()
    assert two["product_default"] and two["groups"] == [] and not two["intelligent"]
    one_now = await api.ok("GET", f"/v1/products/{P}/firmware/1")
    assert not one_now["product_default"] and one_now["groups"] == ["beta"] and one_now["released_at"]
    three = (await released(api, {"version": 3, "groups": ["beta", "eu"]})).json()
    assert three["groups"] == ["beta", "eu"]
    listing = {f["version"]: f for f in await api.ok("GET", f"/v1/products/{P}/firmware")}
    assert listing[1]["released_at"] is None and listing[1]["groups"] == []  # 3 took beta from it
    groups = {g["name"]: g["fw_version"] for g in (await api.ok("GET", f"/v1/products/{P}/groups"))["groups"]}
    assert groups == {"beta": 3, "eu": 3}

    for version in (2, 3):
        refused = await api.call("DELETE", f"/v1/products/{P}/firmware/{version}")
        assert refused.status_code == 409 and refused.json()["field"] == "version"
        assert "released" in refused.json()["error"]
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/1")).status_code == 200  # unreleased now

    unreleased = (await released(api, {"version": 3})).json()  # no targets: unreleased
    assert unreleased["released_at"] is None and unreleased["groups"] == []
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/3")).status_code == 200
    actions = [a["action"] for a in (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]]
    assert actions.count("firmware_released") == 4
    entry = [a for a in (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"] if a["action"] == "firmware_released"]
    assert entry[1]["detail"]["replaced"] == {"product_default": 1}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"version": 9}, 404, "version"),
        ({"version": 1, "groups": ["nope"]}, 400, "groups"),
        ({"version": 1, "groups": ["Not A Name"]}, 400, "groups"),
        ({"version": 1, "groups": "beta"}, 400, "groups"),
        ({"version": "1"}, 400, "version"),
        ({"version": 0}, 400, "version"),
        ({"version": 1, "product_default": "yes"}, 400, "product_default"),
        ({"version": 1, "intelligent": 1}, 400, "intelligent"),
        ({"version": 1, "default": True}, 400, "default"),
        ({"groups": []}, 400, "version"),
    ],
)
async def test_bad_releases(api: Api, product: dict[str, Any], body: dict[str, Any], status: int, field: str) -> None:
    await upload(api, binary(1))
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    response = await released(api, body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert (await api.ok("GET", f"/v1/products/{P}/firmware/1"))["released_at"] is None


async def test_paths_that_name_nothing(api: Api, product: dict[str, Any]) -> None:
    for path, field in [
        (f"/v1/products/{P}/firmware/abc", "version"),
        (f"/v1/products/{P}/firmware/0", "version"),
        (f"/v1/products/{P}/firmware/65536/binary", "version"),
    ]:
        response = await api.call("GET", path)
        assert response.status_code == 400 and response.json()["field"] == field, response.text
    missing = await api.call("GET", "/v1/products/999/firmware")
    assert missing.status_code == 404
    unknown = await upload(api, binary(1, product=999), product=999)
    assert unknown.status_code == 404


async def test_a_binary_missing_from_the_store_or_damaged_there_is_never_served(
    api: Api, product: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data = binary(1, 9000)
    sha256 = (await upload(api, data)).json()["sha256"]
    writer = api.server.ctx.store.sync._w  # type: ignore[attr-defined]  # both engines': the row itself
    writer.execute("UPDATE firmware_blobs SET data = ? WHERE sha256 = ?", (data[:-1], sha256))
    api.server.ctx.binaries.discard(sha256)  # this node's copy gone: the download fetches
    damaged = await api.call("GET", f"/v1/products/{P}/firmware/1/binary")
    assert damaged.status_code == 404 and damaged.json()["field"] == "version"
    assert "does not match its SHA-256" in damaged.json()["error"]
    assert not api.server.ctx.binaries.path(sha256).exists()  # nor kept
    assert [r.levelname for r in caplog.records if r.getMessage() == "firmware_blob_corrupt"] == ["ERROR"]
    writer.execute("DELETE FROM firmware_blobs WHERE sha256 = ?", (sha256,))  # as before migration 14
    missing = await api.call("GET", f"/v1/products/{P}/firmware/1/binary")
    assert missing.status_code == 404 and "not in the store" in missing.json()["error"]
