"""The seed's cases end to end: real server, real sockets, operator actions on live devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.fleet import DeviceOutcome, FleetPlan, run_fleet
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, Privilege, Status
from server.ops.operations import Operations
from server.rules.model import ListState, Owner, Policy, Role

from .conftest import Live, start_live

ADMIN = "user:admin"
P, Q = 1001, 1002


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=8)
    yield running
    running.server.shutdown()


@pytest.fixture
async def ops(live: Live) -> Operations:
    ops = Operations(live.server.ctx)
    await ops.create_product(ADMIN, "Widget", product_id=P, policy=Policy.QUARANTINE)
    await ops.create_product(ADMIN, "Gadget", product_id=Q, policy=Policy.QUARANTINE)
    return ops


@asynccontextmanager
async def device(live: Live, identity: DeviceIdentity, product: int | None) -> AsyncIterator[SimDevice]:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    async with connect_device(stream, identity, live.key, DeviceSettings(product_id=product)) as dev:
        await dev.ping()  # a PONG means READY was processed: the session is registered
        yield dev


async def status_of(live: Live, identity: DeviceIdentity, product: int | None) -> tuple[Status | None, Privilege]:
    """Connect once, then wait until the server has closed the session and committed its writes."""
    async with device(live, identity, product) as dev:
        seen = dev.state.status, dev.state.privileges
    with trio.fail_after(5):
        await live.server.ctx.registry.wait_gone(identity.device_id_hex)
    await live.server.ctx.store.flush()
    return seen


async def changes_to(dev: SimDevice, status: Status) -> None:
    with trio.fail_after(5):
        await dev.wait_status(status)


async def test_preadded_device_is_ok_with_full_privileges(live: Live, ops: Operations) -> None:
    await ops.add_device(ADMIN, P, live.known[0].device_id_hex)
    assert await status_of(live, live.known[0], P) == (Status.OK, Privilege.all())


async def test_unrecognised_device_is_quarantined_then_approved_live(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    async with device(live, identity, P) as dev:
        assert dev.state.status is Status.QUARANTINED and dev.state.privileges == Privilege.NONE
        await live.server.ctx.store.flush()
        devices, _ = live.store.product_devices(P, "quarantined", 0, 10)
        assert [d.device_id for d, _ in devices] == [identity.device_id_hex]
        assert await ops.add_device(ADMIN, P, identity.device_id_hex) == "approved"
        await changes_to(dev, Status.OK)  # no reconnect
        assert dev.state.privileges == Privilege.all()
        assert await dev.publish("after-approval") is AckResult.ACCEPTED
    events = live.store.list_events(identity.device_id_hex)
    assert [e.product_id for e in events] == [P]  # with the privilege, the event reaches the product


async def test_events_of_unprivileged_devices_never_reach_the_product(live: Live, ops: Operations) -> None:
    async with device(live, live.known[0], P) as quarantined:
        assert await quarantined.publish("q") is AckResult.ACCEPTED
    async with device(live, live.known[1], 4242) as limited:
        assert await limited.publish("l") is AckResult.ACCEPTED
    assert len(live.store.list_events()) == 2
    assert all(e.product_id is None for e in live.store.list_events())


async def test_spoofer_with_a_known_id_is_refused(live: Live, ops: Operations) -> None:
    await ops.add_device(ADMIN, P, live.known[0].device_id_hex)
    spoofer = DeviceIdentity(live.known[0].device_id, DeviceIdentity.generate().key)
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    with pytest.raises(DeviceRefused):
        await SimDevice(spoofer, live.key, DeviceSettings(product_id=P)).handshake(stream)
    await stream.aclose()
    audit = live.store.list_audit(device_id=live.known[0].device_id_hex)
    assert [a.action for a in audit] == ["preadded"]  # the refusal wrote nothing


async def test_deny_revokes_privileges_live(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    async with device(live, identity, P) as dev:
        assert dev.state.status is Status.OK
        await ops.remove_device(ADMIN, P, identity.device_id_hex, deny=True)
        await changes_to(dev, Status.DENIED)
        assert dev.state.privileges == Privilege.NONE
    assert await status_of(live, identity, P) == (Status.DENIED, Privilege.NONE)
    await ops.add_device(ADMIN, P, identity.device_id_hex)  # Denied devices can be re-approved
    assert await status_of(live, identity, P) == (Status.OK, Privilege.all())


async def test_removed_device_that_comes_back_lands_on_denied(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    assert await ops.remove_device(ADMIN, P, identity.device_id_hex, deny=False) == "removed"
    assert await status_of(live, identity, P) == (Status.DENIED, Privilege.NONE)
    devices, _ = live.store.product_devices(P, "denied", 0, 10)
    assert [d.device_id for d, _ in devices] == [identity.device_id_hex]
    quarantined, _ = live.store.product_devices(P, "quarantined", 0, 10)
    assert quarantined == []


async def test_development_firmware_leaves_denied_lists(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    await ops.remove_device(ADMIN, P, identity.device_id_hex, deny=True)
    assert await status_of(live, identity, None) == (Status.DEVELOPMENT, Privilege.NONE)
    assert live.store.list_state(P, identity.device_id_hex) is None
    assert await status_of(live, identity, P) == (Status.QUARANTINED, Privilege.NONE)  # unrecognised again


@pytest.mark.parametrize(
    "firmware_after_removal",
    [(None, P), (P, None, P)],
    ids=["removed-development-product", "removed-product-development-product"],
)
async def test_after_removal_development_firmware_makes_the_order_irrelevant(
    live: Live, ops: Operations, firmware_after_removal: tuple[int | None, ...]
) -> None:
    """Development firmware clears the Denied lists and the memory of a removal alike, so a removed
    device that runs it lands in quarantine on product firmware whichever came first."""
    identity = live.known[0]
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    await ops.remove_device(ADMIN, P, identity.device_id_hex, deny=False)
    assert live.store.list_state(P, identity.device_id_hex) is ListState.REMOVED
    for product in firmware_after_removal:
        await status_of(live, identity, product)
    assert live.store.list_state(P, identity.device_id_hex) is ListState.QUARANTINED
    assert await status_of(live, identity, P) == (Status.QUARANTINED, Privilege.NONE)


async def test_auto_approve_joins_an_unowned_device(live: Live, ops: Operations) -> None:
    await ops.update_product(ADMIN, P, name=None, policy=Policy.AUTO_APPROVE)
    identity = live.known[0]
    assert await status_of(live, identity, P) == (Status.OK, Privilege.all())
    record = live.store.get_device(identity.device_id_hex)
    assert record is not None and record.product_id == P


async def test_auto_approve_joins_a_device_owned_by_a_team_member(live: Live, ops: Operations) -> None:
    await ops.update_product(ADMIN, P, name=None, policy=Policy.AUTO_APPROVE)
    member = await ops.create_user(ADMIN, "maria", "correct horse")
    await ops.team_add(ADMIN, P, "maria", Role.DEVELOPER)
    await ops.set_owner(ADMIN, live.known[0].device_id_hex, Owner("user", member.id))
    assert await status_of(live, live.known[0], P) == (Status.OK, Privilege.all())


async def test_auto_approve_refuses_a_device_owned_by_an_outsider(live: Live, ops: Operations) -> None:
    await ops.update_product(ADMIN, P, name=None, policy=Policy.AUTO_APPROVE)
    outsider = await ops.create_user(ADMIN, "mallory", "correct horse")
    await ops.set_owner(ADMIN, live.known[0].device_id_hex, Owner("user", outsider.id))
    assert await status_of(live, live.known[0], P) == (Status.QUARANTINED, Privilege.NONE)
    reason = live.store.list_audit(device_id=live.known[0].device_id_hex)[-1].reason
    assert "outside the product's team" in reason


async def test_preadd_only_product_limits_unknown_devices(live: Live, ops: Operations) -> None:
    await ops.update_product(ADMIN, P, name=None, policy=Policy.PREADD_ONLY)
    assert await status_of(live, live.known[0], P) == (Status.LIMITED, Privilege.NONE)
    (entry,) = [a for a in live.store.list_audit(product_id=P) if a.action == "admission"]
    assert entry.detail["effects"] == ["record_preadd_attempt"]


async def test_mismatch_gets_no_privileges_in_either_product(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await ops.add_device(ADMIN, Q, identity.device_id_hex)
    assert await status_of(live, identity, P) == (Status.QUARANTINED, Privilege.NONE)
    record = live.store.get_device(identity.device_id_hex)
    assert record is not None and record.product_id == Q and record.firmware_product_id == P
    with pytest.raises(Exception, match="move=true"):
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    await ops.add_device(ADMIN, P, identity.device_id_hex, move=True)
    assert await status_of(live, identity, P) == (Status.OK, Privilege.all())
    assert await status_of(live, identity, Q) == (Status.QUARANTINED, Privilege.NONE)


async def test_policy_change_reaches_connected_devices(live: Live, ops: Operations) -> None:
    async with device(live, live.known[0], P) as dev:
        assert dev.state.status is Status.QUARANTINED
        await ops.update_product(ADMIN, P, name=None, policy=Policy.AUTO_APPROVE)
        await changes_to(dev, Status.OK)
        assert [u.status for u in dev.state.updates] == [Status.OK]


async def test_every_decision_is_audited_with_its_reason(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await status_of(live, identity, P)
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    await status_of(live, identity, P)
    entries = live.store.list_audit(device_id=identity.device_id_hex)
    assert [(a.action, a.actor) for a in entries] == [
        ("admission", "device"),
        ("approved", ADMIN),
        ("admission", "device"),
    ]
    assert entries[0].detail["status"] == "quarantined" and entries[2].detail["status"] == "ok"
    assert all(a.reason or a.action == "approved" for a in entries)


async def test_fleet_waits_for_approval_and_reports_the_live_update(live: Live, ops: Operations) -> None:
    plan = FleetPlan("127.0.0.1", live.port, live.key, DeviceSettings(product_id=P), hold=10, wait_status=Status.OK)
    fleet = live.known[:4]
    async with trio.open_nursery() as nursery:
        results: list[list[DeviceOutcome]] = []

        async def run() -> None:
            results.append(await run_fleet(plan, fleet))

        nursery.start_soon(run)
        with trio.fail_after(5):
            while len(live.server.ctx.registry) < len(fleet):
                await live.server.ctx.registry.wait_changed()
        await ops.import_devices(ADMIN, P, [i.device_id_hex for i in fleet])
    (outcomes,) = results
    assert [o.status for o in outcomes] == ["quarantined"] * 4
    assert [o.final_status for o in outcomes] == ["ok"] * 4
    assert all(
        o.updates == [{"status": "ok", "privileges": ["ota", "product_events", "claim", "webhooks"]}] for o in outcomes
    )


async def test_fleet_spoof_behaviour_is_refused(live: Live, ops: Operations) -> None:
    plan = FleetPlan("127.0.0.1", live.port, live.key, DeviceSettings(product_id=P), behaviour="spoof")
    outcomes = await run_fleet(plan, live.known[:3])
    assert [o.outcome for o in outcomes] == ["refused"] * 3
