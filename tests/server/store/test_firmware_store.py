"""Migration 4 and the store's firmware, group, release and lock queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from server.firmware.files import binary_path, write_binary
from server.rules.errors import Conflict, Invalid
from server.rules.firmware_target import TargetFacts
from server.rules.model import Policy
from server.rules.rollout_model import Rollout, RolloutDevice, RolloutSettings, RolloutState, RolloutTarget
from server.store import SQLiteStore, Store
from server.store.records import CAME_BACK_ON_OLD, FirmwareRecord, OfferFacts, OtaOutcome
from server.store.sqlite.migrations import MIGRATIONS
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore, integrity_error

P, OTHER = 4201, 4202
DEV_A, DEV_B = "aa" * 12, "bb" * 12


def tx(store: Store, fn: Callable[[StoreTx], Any]) -> Any:
    return store.transact(fn)


def firmware(version: int, product: int = P) -> FirmwareRecord:
    return FirmwareRecord(product, version, f"v{version}", "", "fw.bin", 100, f"{version:064x}", None, 6, 1.0, "user:a")


def insert_group(s: StoreTx, name: str) -> object:
    return s.insert_group(P, name, "", 2.0)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    s = open_store()

    def setup(s: StoreTx) -> None:
        for product in (P, OTHER):
            s.insert_product(product, f"p{product}", "P", Policy.QUARANTINE, 1.0)
        for device in (DEV_A, DEV_B):
            s.ensure_device(device, 1.0)
            s.set_membership(device, P)
        for version in (1, 2, 3):
            s.insert_firmware(firmware(version))
        for name in ("beta", "eu"):
            s.insert_group(P, name, "", 1.0)

    tx(s, setup)
    return s


def test_schema_version_4_from_scratch_and_from_version_3(tmp_path: Path) -> None:
    fresh = SQLiteStore(tmp_path / "fresh.db")
    assert fresh.schema_version == MIGRATIONS[-1][0] >= 4
    fresh.close()
    # A database at version 3 with a product and a device in it, as the previous release left it.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS[:3]:
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO products (id, slug, name, created_at) VALUES (7, 'old', 'Old', 0)")
    conn.execute("INSERT INTO devices (device_id, created_at, product_id) VALUES (?, 0, 7)", (DEV_A,))
    conn.commit()
    conn.close()
    upgraded = SQLiteStore(path)
    assert upgraded.schema_version >= 4
    tables = {name for (name,) in upgraded._r.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"firmware", "device_groups", "device_group_members", "firmware_releases", "firmware_locks"} <= tables
    assert upgraded.get_product(7) is not None and upgraded.list_firmware(7) == []
    device = upgraded.get_device(DEV_A)
    assert device is not None and device.product_id == 7
    upgraded.close()


def test_firmware_rows_and_duplicate_versions(store: Store) -> None:
    assert [f.version for f in store.list_firmware(P)] == [1, 2, 3]
    assert store.list_firmware(OTHER) == []
    got = store.get_firmware(P, 2)
    assert got is not None and got.sha256 == f"{2:064x}" and not got.released and got.groups == ()
    with pytest.raises(Conflict) as info:
        tx(store, lambda s: s.insert_firmware(firmware(2)))
    assert info.value.field == "version"
    tx(store, lambda s: s.insert_firmware(firmware(2, OTHER)))  # versions are per product
    with pytest.raises(integrity_error(store)):
        tx(store, lambda s: s.insert_firmware(firmware(0)))


def test_release_is_declarative(store: Store) -> None:
    def release(version: int, default: bool, groups: list[str], at: float = 5.0) -> None:
        tx(store, lambda s: s.release_firmware(
            P, version, product_default=default, groups=groups, intelligent=False, at=at, actor="user:a"
        ))  # fmt: skip

    release(1, True, ["beta"])
    one = store.get_firmware(P, 1)
    assert one is not None and one.product_default and one.groups == ("beta",) and one.released_at == 5.0
    release(2, True, [], at=6.0)  # takes the default from 1; 1 keeps beta
    one, two = store.get_firmware(P, 1), store.get_firmware(P, 2)
    assert one is not None and not one.product_default and one.groups == ("beta",) and one.released
    assert two is not None and two.product_default and two.released_at == 6.0
    release(3, False, ["beta", "eu"], at=7.0)  # takes beta from 1: 1 has nothing left
    one = store.get_firmware(P, 1)
    assert one is not None and not one.released and one.released_at is None
    assert {(r.version, r.group) for r in store.list_releases(P)} == {(2, None), (3, "beta"), (3, "eu")}
    beta = store.get_group(P, "beta")
    assert beta is not None and beta.fw_version == 3
    release(3, False, [])  # nothing named: unreleased
    three = store.get_firmware(P, 3)
    assert three is not None and not three.released and three.groups == ()
    with pytest.raises(Invalid):
        release(2, False, ["nope"])


def test_a_released_or_locked_version_cannot_be_deleted_by_the_schema(store: Store) -> None:
    tx(store, lambda s: s.release_firmware(
        P, 1, product_default=True, groups=[], intelligent=True, at=5.0, actor="user:a"
    ))  # fmt: skip
    with pytest.raises(integrity_error(store)):
        tx(store, lambda s: s.delete_firmware(P, 1))
    tx(store, lambda s: s.set_firmware_lock(P, DEV_A, 2, 5.0, "user:a"))
    with pytest.raises(integrity_error(store)):
        tx(store, lambda s: s.delete_firmware(P, 2))
    assert tx(store, lambda s: s.delete_firmware(P, 3)) is True
    assert tx(store, lambda s: s.delete_firmware(P, 3)) is False


def test_groups_members_and_names(store: Store) -> None:
    with pytest.raises(Conflict) as info:
        tx(store, lambda s: s.insert_group(P, "beta", "", 2.0))
    assert info.value.field == "name"
    tx(store, lambda s: s.insert_group(OTHER, "beta", "", 2.0))  # names are per product
    for bad in ("Beta", "", "a b", "x" * 65, "é"):  # the schema refuses what the API would (a second guard)
        with pytest.raises(integrity_error(store)):
            tx(store, partial(insert_group, name=bad))
    tx(store, lambda s: s.insert_group(P, "a_b-9", "", 2.0))

    tx(store, lambda s: s.set_device_groups(P, DEV_A, ["eu", "beta", "eu"]))
    assert store.device_groups(P, DEV_A) == ["beta", "eu"]
    tx(store, lambda s: s.set_device_groups(P, DEV_A, ["eu"]))  # sets, not adds
    assert store.device_groups(P, DEV_A) == ["eu"]
    with pytest.raises(Invalid) as bad_group:
        tx(store, lambda s: s.set_device_groups(P, DEV_A, ["eu", "nope"]))
    assert bad_group.value.field == "groups" and store.device_groups(P, DEV_A) == ["eu"]  # rolled back
    eu = store.get_group(P, "eu")
    assert eu is not None and eu.device_count == 1
    assert [g.name for g in store.list_groups(P)] == ["a_b-9", "beta", "eu"]

    tx(store, lambda s: s.release_firmware(
        P, 2, product_default=False, groups=["eu"], intelligent=False, at=5.0, actor="user:a"
    ))  # fmt: skip
    assert tx(store, lambda s: s.delete_group(P, "eu")) is True
    assert store.device_groups(P, DEV_A) == [] and store.list_releases(P) == []
    two = store.get_firmware(P, 2)
    assert two is not None and not two.released  # its only release went with the group
    assert tx(store, lambda s: s.delete_group(P, "eu")) is False


def test_target_facts_and_leaving_the_product(store: Store) -> None:
    def setup(s: StoreTx) -> None:
        s.release_firmware(P, 1, product_default=True, groups=[], intelligent=False, at=5.0, actor="user:a")
        s.release_firmware(P, 2, product_default=False, groups=["beta"], intelligent=True, at=5.0, actor="user:a")
        s.release_firmware(P, 3, product_default=False, groups=["eu"], intelligent=False, at=5.0, actor="user:a")
        s.set_device_groups(P, DEV_A, ["beta", "eu"])
        s.set_firmware_lock(P, DEV_B, 1, 5.0, "user:a")

    tx(store, setup)
    a = store.firmware_target_facts(P, DEV_A)
    assert a.locked_version is None and a.default_version == 1 and a.group_versions == {2, 3}
    assert a.groups == ("beta", "eu") and {r.group: r.intelligent for r in a.group_releases} == {
        "beta": True,
        "eu": False,
    }
    b = store.firmware_target_facts(P, DEV_B)
    assert b.locked_version == 1 and b.group_versions == frozenset() and b.default_version == 1
    assert store.firmware_lock(P, DEV_B) == 1 and store.firmware_locks_on(P, 1) == [DEV_B]

    # Leaving the product (remove, deny, move) drops its groups and its lock, whatever the code path.
    tx(store, lambda s: s.set_membership(DEV_A, None))
    tx(store, lambda s: s.set_membership(DEV_B, OTHER))
    assert store.device_groups(P, DEV_A) == [] and store.firmware_lock(P, DEV_B) is None
    tx(store, lambda s: s.set_membership(DEV_A, P))  # coming back starts clean
    assert store.firmware_target_facts(P, DEV_A).groups == ()


def test_unlock(store: Store) -> None:
    tx(store, lambda s: s.set_firmware_lock(P, DEV_A, 3, 5.0, "user:a"))
    tx(store, lambda s: s.set_firmware_lock(P, DEV_A, 2, 6.0, "user:a"))
    assert store.firmware_lock(P, DEV_A) == 2
    tx(store, lambda s: s.set_firmware_lock(P, DEV_A, None, 7.0, "user:a"))
    assert store.firmware_lock(P, DEV_A) is None
    with pytest.raises(integrity_error(store)):  # only uploaded versions
        tx(store, lambda s: s.set_firmware_lock(P, DEV_A, 99, 7.0, "user:a"))


def test_binary_paths_are_derived_and_writes_atomic(tmp_path: Path) -> None:
    digest = "ab" * 32
    path = binary_path(tmp_path, 4201, 3, digest)
    assert path == tmp_path / "firmware" / "4201" / f"3-{'ab' * 8}.bin"
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31):
        with pytest.raises(ValueError):
            binary_path(tmp_path, 4201, 3, bad)
    write_binary(path, b"first")
    write_binary(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


def _offer_facts_read_one_by_one(store: Store, product_id: int, device_id: str) -> OfferFacts:
    """What the connect path read before `offer_facts`, six reads: the reference it must equal."""
    device = store.get_device(device_id)
    facts = store.firmware_target_facts(product_id, device_id)
    last = store.ota_outcome(device_id)
    target = TargetFacts(
        development=device is not None and device.development,
        locked_version=facts.locked_version,
        rollout_version=store.rollout_assignment(product_id, device_id),
        group_versions=facts.group_versions,
        product_default=facts.default_version,
    )
    return OfferFacts(target, last.version if last else None, last.reason if last else "")


def _rollout(product_id: int, version: int) -> Rollout:
    return Rollout(
        id=0, product_id=product_id, version=version, target=RolloutTarget(product_default=True),
        settings=RolloutSettings(), state=RolloutState.RUNNING, state_reason="started", current_stage=0,
        rate_budget=0.0, error_action_fired=False, created_at=5.0, created_by="user:a", updated_at=5.0,
    )  # fmt: skip


def test_offer_facts_in_one_statement_are_the_six_reads(store: Store) -> None:
    """`offer_facts` (one statement on the connect path) says what the reads it replaced said, for
    devices with every input of the target rule set or missing, and for an unknown device."""
    dev_c, dev_d, unknown = "cc" * 12, "dd" * 12, "ee" * 12

    def setup(s: StoreTx) -> None:
        for device in (dev_c, dev_d):
            s.ensure_device(device, 1.0)
            s.set_membership(device, P)
        s.insert_group(OTHER, "beta", "", 1.0)  # same name in another product: not DEV_A's group
        s.insert_firmware(firmware(1, OTHER))
        s.release_firmware(OTHER, 1, product_default=True, groups=["beta"], intelligent=False, at=5.0, actor="a")
        s.release_firmware(P, 1, product_default=True, groups=[], intelligent=False, at=5.0, actor="user:a")
        s.release_firmware(P, 2, product_default=False, groups=["beta"], intelligent=True, at=5.0, actor="user:a")
        s.release_firmware(P, 3, product_default=False, groups=["eu"], intelligent=False, at=5.0, actor="user:a")
        s.set_device_groups(P, DEV_A, ["beta", "eu"])
        s.set_device_groups(P, dev_c, ["eu"])
        s.set_firmware_lock(P, DEV_B, 1, 5.0, "user:a")
        s.update_device_fields(dev_c, {"development": 1})
        # Two rollouts assign DEV_A a version: the newest one's counts. One of another product does not.
        for version in (2, 3):
            rid = s.insert_rollout(_rollout(P, version), [(DEV_A, 0), (dev_d, 0)])
            s.update_rollout_devices([RolloutDevice(rid, DEV_A, 0, 0, assigned_version=version)])
        rid = s.insert_rollout(_rollout(OTHER, 1), [(dev_d, 0)])
        s.update_rollout_devices([RolloutDevice(rid, dev_d, 0, 0, assigned_version=1)])
        s.set_ota_outcome(OtaOutcome(DEV_B, P, 2, "failed", f"{CAME_BACK_ON_OLD} version 1, not 2", 6.0))
        s.set_ota_outcome(OtaOutcome(dev_d, P, 3, "installed", "", 6.0))

    tx(store, setup)
    expected = {
        DEV_A: OfferFacts(TargetFacts(False, None, 3, frozenset({2, 3}), 1), None, ""),
        DEV_B: OfferFacts(TargetFacts(False, 1, None, frozenset(), 1), 2, f"{CAME_BACK_ON_OLD} version 1, not 2"),
        dev_c: OfferFacts(TargetFacts(True, None, None, frozenset({3}), 1), None, ""),
        dev_d: OfferFacts(TargetFacts(False, None, None, frozenset(), 1), 3, ""),
        unknown: OfferFacts(TargetFacts(False, None, None, frozenset(), 1), None, ""),
    }
    for device, facts in expected.items():
        assert store.offer_facts(P, device) == facts == _offer_facts_read_one_by_one(store, P, device), device
    # A product with nothing released, locked or rolled out.
    assert store.offer_facts(OTHER, DEV_A) == _offer_facts_read_one_by_one(store, OTHER, DEV_A)
    assert store.offer_facts(OTHER, DEV_A).target == TargetFacts(product_default=1)
