"""Schemathesis against a real running server: no input, valid or not, makes any operation answer 5xx.

The schema at /openapi.json drives it. Path parameters name rows seeded first (a product with a
device, firmware, a group, a rollout, a webhook, a team member), so requests reach the code behind
the 404s; everything else is generated. The admin token goes in the Authorization header, over a
generated one, and a generated `access_token` query parameter (the schema's other way to
authenticate) is taken out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from firmware_sim import firmware

from ..e2e.cli_support import serving
from .conftest import bearer

P = 4501
DEVICE = "4f" * 12
MEMBER = "fuzz-member"
FUZZER = "fuzz-admin"  # each run logs in afresh: a run may revoke its own token (DELETE /v1/access_tokens/current)
PASSWORD = "correct horse battery"
EXAMPLES = 20  # per operation; the whole run stays under a minute on two cores

# Values for path parameters: each names a row that exists (a generated one would only ever find 404s).
ROWS: dict[str, Any] = {
    "product": P,
    "device_id": DEVICE,
    "version": 2,  # the rollout's
    "name": "beta",
    "username": MEMBER,
    "rollout_id": 1,
    "webhook_id": 1,
    "prefix": "temp",
}


def seed(http: httpx.Client) -> dict[str, Any]:
    """The world the fuzzer works in; answers the path parameter values that reach its rows."""

    def ok(method: str, path: str, **kwargs: Any) -> Any:
        response = http.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.text)
        return response.json()

    ok("POST", "/v1/products", json={"name": "Fuzz", "id": P})
    ok("POST", f"/v1/products/{P}/devices", json={"id": DEVICE})
    for version in (1, 2):
        files = {"binary": ("fw.bin", firmware.build(P, version, 3000), "application/octet-stream")}
        ok("POST", f"/v1/products/{P}/firmware", data={"version": str(version), "title": f"v{version}"}, files=files)
    ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    ok("POST", "/v1/users", json={"username": MEMBER, "password": PASSWORD})
    ok("POST", "/v1/users", json={"username": FUZZER, "password": PASSWORD, "admin": True})
    ok("POST", f"/v1/products/{P}/team", json={"username": MEMBER, "role": "view_only"})
    rollout = ok("POST", f"/v1/products/{P}/rollouts", json={"version": 2, "product_default": True})
    hook = ok(
        "POST",
        f"/v1/products/{P}/webhooks",
        json={"event": "temp", "url": "https://hooks.example.net/in"},
    )
    return {**ROWS, "rollout_id": rollout["rollout"]["id"], "webhook_id": hook["id"]}


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, Any]]]:
    # A `fleetgate serve` process, not a thread of this one: Hypothesis generating cases here must
    # not hold the server off the interpreter lock (an event stream is read for STREAM_SECONDS only).
    data = tmp_path_factory.mktemp("schema-fuzz") / "data"
    with serving(data, "--log-level", "error") as served:  # its stderr is a pipe nobody drains: keep it quiet
        admin_token = (data / "admin.token").read_text().strip()
        with httpx.Client(base_url=served.api, headers=bearer(admin_token), timeout=10, verify=False) as http:
            rows = seed(http)
        yield served.api, admin_token, rows


# Undocumented 4xx statuses are not checked: a run once saw POST /v1/products answer 404 and could
# not reproduce it (noted on the issue); what this run holds the API to is no 5xx, ever.
CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
Operation = APIOperation[Any, Any, Any, Any]
PATH_PARAMETER = re.compile(r"{(\w+)}")
STREAM_SECONDS = 0.3  # an event stream never ends: read this long (a broken replay breaks at once)
REQUEST_SECONDS = 10.0


def is_event_stream(operation: Operation) -> bool:
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


def takes_input(operation: Operation) -> bool:
    """Whether a request can carry anything the operation reads: parameters, a body or a token."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody") or raw.get("security"))


def fuzz_operation(
    operation: Operation, mode: GenerationMode, base_url: str, token: str, rows: dict[str, Any]
) -> set[int]:
    """The statuses the operation answered; raises what the checks found."""
    fixed = {name: rows[name] for name in PATH_PARAMETER.findall(operation.path) if name in rows}
    timeout = STREAM_SECONDS if is_event_stream(operation) else REQUEST_SECONDS

    # Half the cases name the seeded rows, half are generated whole (odd IDs must not crash either).
    cases = operation.as_strategy(mode, path_parameters=fixed) | operation.as_strategy(mode)

    statuses: set[int] = set()

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Case[Operation]) -> None:
        if case.query:
            case.query.pop("access_token", None)
        case.headers["Authorization"] = f"Bearer {token}"  # not a generated, unknown, one
        response = case.call_and_validate(base_url=base_url, headers=bearer(token), checks=CHECKS, timeout=timeout)
        statuses.add(response.status_code)

    run()
    return statuses


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_api_answer_5xx(
    fuzzed_server: tuple[str, str, dict[str, Any]], mode: GenerationMode
) -> None:
    base_url, _, rows = fuzzed_server
    login = {"grant_type": "password", "username": FUZZER, "password": PASSWORD}
    token = httpx.post(f"{base_url}/oauth/token", data=login, timeout=10).json()["access_token"]
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the schema itself is sound
        operations.append(result.ok())
    # Revoking tokens last: a generated request may revoke the very token the run uses.
    operations.sort(key=lambda operation: operation.path.startswith("/v1/access_tokens/"))
    locked_out: list[str] = []
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue  # nothing to make invalid (GET /healthz, /readyz): the positive run calls it
        try:
            statuses = fuzz_operation(operation, mode, base_url, token, rows)
            if statuses <= {401} and operation.path != "/v1/access_tokens/{token}":
                locked_out.append(name)
        # Every operation's failures are reported, not the first one's only.
        except (Exception, FailureGroup) as exc:
            inner = getattr(exc, "exceptions", ())  # a flaky run's first failure is inside it
            failures.append(f"{name}: {exc}" + "".join(f"\n  {e!r}" for e in inner))
    assert not failures, "\n\n".join(failures)
    assert not locked_out, f"only 401s (was the token revoked?): {locked_out}"
