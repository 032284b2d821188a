"""The drill's calls to the operator HTTP API (docs/API.md), as the admin."""

from __future__ import annotations

from typing import Any

import httpx

from .identity import DeviceIdentity

BATCH = 10_000  # the API's limit for one provisioning or import request
PER_PAGE = 100  # the most a listing returns per page
TIMEOUT = httpx.Timeout(30.0)


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:300]}")
        self.status = status


class DrillApi:
    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(method, path, response.status_code, response.text)
        return response.json()

    async def register_keys(self, identities: list[DeviceIdentity]) -> None:
        for i in range(0, len(identities), BATCH):
            rows = [{"id": d.device_id_hex, "public_key": d.key.public.hex()} for d in identities[i : i + BATCH]]
            answer = await self._call("POST", "/v1/provisioning", json={"devices": rows})
            if answer.get("errors"):
                raise ApiError("POST", "/v1/provisioning", 200, str(answer["errors"][:3]))

    async def create_product(self, product_id: int, name: str) -> None:
        await self._call("POST", "/v1/products", json={"name": name, "id": product_id})

    async def preadd(self, product_id: int, identities: list[DeviceIdentity]) -> None:
        path = f"/v1/products/{product_id}/devices"
        for i in range(0, len(identities), BATCH):
            ids = "".join(f"{d.device_id_hex}\n" for d in identities[i : i + BATCH])
            answer = await self._call("POST", path, files={"file": ("ids.txt", ids.encode(), "text/plain")})
            if answer.get("invalidDeviceIds") or answer.get("nonmemberDeviceIds"):
                raise ApiError("POST", path, 200, str(answer))

    async def upload_firmware(self, product_id: int, version: int, binary: bytes) -> None:
        await self._call(
            "POST",
            f"/v1/products/{product_id}/firmware",
            data={"version": str(version), "title": f"drill v{version}"},
            files={"binary": (f"drill-{version}.bin", binary, "application/octet-stream")},
        )

    async def release_default(self, product_id: int, version: int) -> None:
        body = {"version": version, "product_default": True}
        await self._call("PUT", f"/v1/products/{product_id}/firmware/release", json=body)

    async def create_rollout(self, product_id: int, body: dict[str, object]) -> dict[str, Any]:
        answer = await self._call("POST", f"/v1/products/{product_id}/rollouts", json=body)
        rollout: dict[str, Any] = answer["rollout"]
        return rollout

    async def rollout(self, product_id: int, rollout_id: int) -> dict[str, Any]:
        answer = await self._call("GET", f"/v1/products/{product_id}/rollouts/{rollout_id}")
        rollout: dict[str, Any] = answer["rollout"]
        return rollout

    async def rollout_devices(self, product_id: int, rollout_id: int) -> list[dict[str, Any]]:
        path = f"/v1/products/{product_id}/rollouts/{rollout_id}/devices"
        out: list[dict[str, Any]] = []
        page, pages = 1, 1
        while page <= pages:
            answer = await self._call("GET", path, params={"page": page, "per_page": PER_PAGE})
            out.extend(answer["devices"])
            pages = int(answer["meta"]["total_pages"])
            page += 1
        return out
