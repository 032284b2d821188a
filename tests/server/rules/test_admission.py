"""Admission as a table: `server.rules.admission.decide` against DESIGN.md section 3, every row.

Three layers:

* an exhaustive matrix (firmware product x cloud product x policy x list state x owner) checked
  against an oracle written here from the specification, not from `decide`;
* one named test per row of the table in DESIGN.md section 3, meant to be read as documentation;
* a Hypothesis property: for any input `decide` returns a decision (or the documented ValueError)
  and never grants a privilege without status OK.

The table in DESIGN.md is unordered; where two of its rows match the same connection the oracle
follows the order documented in admission.py (development, match, unknown product, Denied,
removed, policy). The mismatch row ("limited for cloud's product too") is read as admission.py
reads it: a flag on top of the firmware product's outcome, not a status of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import Privilege, Status
from server.rules.admission import Decision, DeviceFacts, Effect, ListState, Owner, Policy, ProductFacts, decide

# Two existing products with disjoint teams, and a Product ID that names no product.
P = 1
Q = 2
MISSING = 3
TEAMS: dict[int, frozenset[int]] = {P: frozenset({101, 102}), Q: frozenset({201, 202})}
A_TEAM_MEMBER = {P: 101, Q: 201}  # one member of each product's team
OUTSIDER_OF = {P: 201, Q: 101}  # a user who is on the *other* product's team, not this one's
NOBODY = 999  # a user on no team at all


class OwnerCase(Enum):
    NONE = "unowned"
    TEAM_USER = "team-user"  # a user on the firmware product's team
    OUTSIDER = "outsider"  # a user not on the firmware product's team (on the other product's team)
    CUSTOMER = "customer"  # a customer whose id equals a team member's user id: only the kind differs


@dataclass(frozen=True)
class Scenario:
    fw: int | None  # the Product ID the firmware reports: None, P, Q or MISSING
    cloud: int | None  # the product the device is a member of: None, P or Q
    policy: Policy  # the firmware product's policy (irrelevant when it does not exist)
    state: ListState | None  # this device on the firmware product's lists
    owner: OwnerCase

    @property
    def fw_exists(self) -> bool:
        return self.fw in TEAMS

    def label(self) -> str:
        def name(product: int | None) -> str:
            return {None: "none", P: "P", Q: "Q", MISSING: "missing"}[product]

        state = self.state.value if self.state else "unlisted"
        return f"fw={name(self.fw)}-cloud={name(self.cloud)}-{self.policy.value}-{state}-{self.owner.value}"

    def owner_facts(self) -> Owner | None:
        member = A_TEAM_MEMBER.get(self.fw, A_TEAM_MEMBER[P]) if self.fw is not None else A_TEAM_MEMBER[P]
        outsider = OUTSIDER_OF.get(self.fw, NOBODY) if self.fw is not None else NOBODY
        match self.owner:
            case OwnerCase.NONE:
                return None
            case OwnerCase.TEAM_USER:
                return Owner("user", member)
            case OwnerCase.OUTSIDER:
                return Owner("user", outsider)
            case OwnerCase.CUSTOMER:
                return Owner("customer", member)

    def device(self) -> DeviceFacts:
        return DeviceFacts(cloud_product_id=self.cloud, owner=self.owner_facts())

    def fw_product(self) -> ProductFacts | None:
        if self.fw is None or not self.fw_exists:
            return None
        return ProductFacts(self.fw, self.policy, TEAMS[self.fw], self.state)

    def decide(self) -> Decision:
        return decide(self.device(), self.fw, self.fw_product())


# --- the oracle: DESIGN.md section 3, row by row, over the abstract scenario --------------------


@dataclass(frozen=True)
class Row:
    case: str  # the wording of the DESIGN.md row
    applies: Callable[[Scenario], bool]
    status: Status
    effects: frozenset[Effect] = frozenset()


def _owned_acceptably(s: Scenario) -> bool:
    return s.owner in (OwnerCase.NONE, OwnerCase.TEAM_USER)


def _in_no_other_product(s: Scenario) -> bool:
    return s.cloud is None or s.cloud == s.fw


def _auto_approve(s: Scenario) -> bool:
    return s.fw_exists and s.policy is Policy.AUTO_APPROVE


# In admission.py's order of evaluation; the first row that applies decides.
TABLE: tuple[Row, ...] = (
    Row(
        "fw is none (development firmware)",
        lambda s: s.fw is None,
        Status.DEVELOPMENT,
        frozenset({Effect.LEAVE_DENIED_LISTS}),
    ),
    Row("fw == cloud", lambda s: s.fw == s.cloud, Status.OK),
    Row("fw names no existing product", lambda s: not s.fw_exists, Status.LIMITED),
    Row("device on fw's Denied list", lambda s: s.state is ListState.DENIED, Status.DENIED),
    Row(
        "removed from fw earlier",
        lambda s: s.state is ListState.REMOVED,
        Status.DENIED,
        frozenset({Effect.REMOVED_TO_DENIED}),
    ),
    Row(
        "fw's policy is quarantine",
        lambda s: s.policy is Policy.QUARANTINE,
        Status.QUARANTINED,
        frozenset({Effect.QUARANTINE}),
    ),
    Row(
        "auto_approve, in no other product, unowned or owned by a team member of fw",
        lambda s: _auto_approve(s) and _in_no_other_product(s) and _owned_acceptably(s),
        Status.OK,
        frozenset({Effect.JOIN}),
    ),
    Row("auto_approve otherwise", _auto_approve, Status.QUARANTINED, frozenset({Effect.QUARANTINE})),
    Row(
        "fw's policy is preadd_only",
        lambda s: s.policy is Policy.PREADD_ONLY,
        Status.LIMITED,
        frozenset({Effect.RECORD_PREADD_ATTEMPT}),
    ),
)


@dataclass(frozen=True)
class Expected:
    status: Status
    privileges: Privilege
    product_id: int | None
    effects: frozenset[Effect]
    mismatch: bool


def expected(s: Scenario) -> Expected:
    row = next(r for r in TABLE if r.applies(s))
    # "cloud is set and fw != cloud: limited for cloud's product too (mismatch flagged)".
    # Development firmware is its own status and is not flagged (admission.py's reading).
    mismatch = s.fw is not None and s.cloud is not None and s.fw != s.cloud
    return Expected(
        status=row.status,
        privileges=Privilege.all() if row.status is Status.OK else Privilege.NONE,  # deny by default
        product_id=s.fw,
        effects=row.effects,
        mismatch=mismatch,
    )


SCENARIOS = [
    Scenario(fw, cloud, policy, state, owner)
    for fw, cloud, policy, state, owner in itertools.product(
        (None, P, Q, MISSING),
        (None, P, Q),
        tuple(Policy),
        (None, *ListState),
        tuple(OwnerCase),
    )
]


def test_the_matrix_covers_every_combination() -> None:
    assert len(SCENARIOS) == 4 * 3 * 3 * 4 * 4 == len({s.label() for s in SCENARIOS})
    # Every row of the table is reached by some combination, so none of them is dead.
    first_rows = {next(r for r in TABLE if r.applies(s)).case for s in SCENARIOS}
    assert first_rows == {r.case for r in TABLE}


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.label()) for s in SCENARIOS])
def test_admission_table(scenario: Scenario) -> None:
    decision = scenario.decide()
    want = expected(scenario)
    got = Expected(decision.status, decision.privileges, decision.product_id, decision.effects, decision.mismatch)
    assert got == want
    assert decision.reason  # every decision explains itself for the audit trail
    # Deny by default: all privileges with OK, none with anything else, never a partial set.
    if decision.status is Status.OK:
        assert decision.privileges == Privilege.all()
    else:
        assert decision.privileges == Privilege.NONE


# --- the table of DESIGN.md section 3, one row at a time -------------------------------------------


def product(pid: int, policy: Policy, state: ListState | None = None) -> ProductFacts:
    return ProductFacts(pid, policy, TEAMS[pid], state)


def device(cloud: int | None = None, owner: Owner | None = None) -> DeviceFacts:
    return DeviceFacts(cloud_product_id=cloud, owner=owner)


def assert_no_privileges(decision: Decision, status: Status, *effects: Effect, mismatch: bool = False) -> None:
    assert decision.status is status
    assert decision.privileges == Privilege.NONE
    assert decision.effects == frozenset(effects)
    assert decision.mismatch is mismatch


@pytest.mark.parametrize("pid", [P, Q])
@pytest.mark.parametrize("policy", list(Policy))
def test_firmware_product_equal_to_cloud_product_gets_ok_with_full_privileges(pid: int, policy: Policy) -> None:
    decision = decide(device(cloud=pid, owner=Owner("user", NOBODY)), pid, product(pid, policy))
    assert decision.status is Status.OK
    assert decision.privileges == Privilege.all()
    assert decision.product_id == pid
    assert decision.effects == frozenset() and not decision.mismatch


def test_membership_wins_over_a_stale_list_entry_of_the_same_product() -> None:
    # The table is unordered; admission.py evaluates fw == cloud before the lists.
    decision = decide(device(cloud=P), P, product(P, Policy.QUARANTINE, ListState.DENIED))
    assert decision.status is Status.OK and decision.privileges == Privilege.all()


@pytest.mark.parametrize("cloud", [None, P])
def test_development_firmware_gets_no_privileges(cloud: int | None) -> None:
    decision = decide(device(cloud=cloud, owner=Owner("user", A_TEAM_MEMBER[P])), None, None)
    assert_no_privileges(decision, Status.DEVELOPMENT, Effect.LEAVE_DENIED_LISTS)
    assert decision.product_id is None


def test_development_firmware_leaves_denied_lists() -> None:
    # A device on P's Denied list that comes back with P firmware is denied ...
    denied = decide(device(), P, product(P, Policy.AUTO_APPROVE, ListState.DENIED))
    assert denied.status is Status.DENIED
    # ... and the same device with development firmware asks to be taken off every Denied list.
    development = decide(device(), None, None)
    assert development.status is Status.DEVELOPMENT
    assert Effect.LEAVE_DENIED_LISTS in development.effects


# What each effect does to the device's entry on P's lists, as the specification says it (the
# store's side of it is tested end to end in tests/e2e/test_admission_live.py).
def _entry_after(entry: ListState | None, decision: Decision) -> ListState | None:
    if Effect.LEAVE_DENIED_LISTS in decision.effects and entry in (ListState.DENIED, ListState.REMOVED):
        return None  # development firmware forgets Denied entries and removals alike
    if Effect.REMOVED_TO_DENIED in decision.effects:
        return ListState.DENIED
    if Effect.QUARANTINE in decision.effects:
        return ListState.QUARANTINED
    return entry


@pytest.mark.parametrize(
    "connections",
    [[None, P], [P, None, P], [P, P, None, P], [None, None, P], [None, P, None, P]],
    ids=lambda c: "-".join("dev" if p is None else "product" for p in c),
)
def test_after_a_removal_the_order_of_development_and_product_firmware_does_not_matter(
    connections: list[int | None],
) -> None:
    """A removed device that has run development firmware at least once is unrecognised, not denied."""
    entry: ListState | None = ListState.REMOVED
    decision = None
    for fw in connections:
        facts = None if fw is None else product(P, Policy.QUARANTINE, entry)
        decision = decide(device(), fw, facts)
        entry = _entry_after(entry, decision)
    assert decision is not None and decision.status is Status.QUARANTINED
    assert entry is ListState.QUARANTINED


@pytest.mark.parametrize("cloud", [None, P])
def test_firmware_naming_no_existing_product_is_limited(cloud: int | None) -> None:
    decision = decide(device(cloud=cloud), MISSING, None)
    assert_no_privileges(decision, Status.LIMITED, mismatch=cloud is not None)
    assert decision.product_id == MISSING


@pytest.mark.parametrize("policy", list(Policy))
def test_device_on_the_denied_list_is_denied_whatever_the_policy(policy: Policy) -> None:
    team_owned = device(owner=Owner("user", A_TEAM_MEMBER[P]))
    decision = decide(team_owned, P, product(P, policy, ListState.DENIED))
    assert_no_privileges(decision, Status.DENIED)
    assert decision.product_id == P


@pytest.mark.parametrize("policy", list(Policy))
def test_removed_device_that_returns_lands_on_denied_not_quarantine(policy: Policy) -> None:
    decision = decide(device(), P, product(P, policy, ListState.REMOVED))
    assert_no_privileges(decision, Status.DENIED, Effect.REMOVED_TO_DENIED)
    assert Effect.QUARANTINE not in decision.effects


@pytest.mark.parametrize("owner", [None, Owner("user", A_TEAM_MEMBER[P]), Owner("user", NOBODY), Owner("customer", 7)])
def test_quarantine_policy_quarantines_an_unrecognised_device(owner: Owner | None) -> None:
    decision = decide(device(owner=owner), P, product(P, Policy.QUARANTINE))
    assert_no_privileges(decision, Status.QUARANTINED, Effect.QUARANTINE)
    assert decision.product_id == P


def test_a_quarantined_device_stays_quarantined_until_approved() -> None:
    decision = decide(device(), P, product(P, Policy.QUARANTINE, ListState.QUARANTINED))
    assert_no_privileges(decision, Status.QUARANTINED, Effect.QUARANTINE)


@pytest.mark.parametrize(
    "owner", [None, Owner("user", 101), Owner("user", 102)], ids=["unowned", "member-101", "member-102"]
)
def test_auto_approve_joins_an_unowned_or_team_owned_device(owner: Owner | None) -> None:
    decision = decide(device(owner=owner), P, product(P, Policy.AUTO_APPROVE))
    assert decision.status is Status.OK
    assert decision.privileges == Privilege.all()
    assert decision.effects == frozenset({Effect.JOIN})
    assert decision.product_id == P and not decision.mismatch


def test_auto_approve_refuses_device_owned_by_outsider() -> None:
    # The owner is on Q's team, not P's: P does not auto-approve it.
    decision = decide(device(owner=Owner("user", OUTSIDER_OF[P])), P, product(P, Policy.AUTO_APPROVE))
    assert_no_privileges(decision, Status.QUARANTINED, Effect.QUARANTINE)


def test_auto_approve_refuses_device_owned_by_a_customer() -> None:
    # A customer is not a team member, even one whose id equals a team member's user id.
    decision = decide(device(owner=Owner("customer", A_TEAM_MEMBER[P])), P, product(P, Policy.AUTO_APPROVE))
    assert_no_privileges(decision, Status.QUARANTINED, Effect.QUARANTINE)


@pytest.mark.parametrize("owner", [None, Owner("user", A_TEAM_MEMBER[P])], ids=["unowned", "team-owned"])
def test_auto_approve_refuses_device_that_belongs_to_another_product(owner: Owner | None) -> None:
    decision = decide(device(cloud=Q, owner=owner), P, product(P, Policy.AUTO_APPROVE))
    assert_no_privileges(decision, Status.QUARANTINED, Effect.QUARANTINE, mismatch=True)
    assert decision.product_id == P


@pytest.mark.parametrize("cloud", [None, Q])
def test_preadd_only_is_limited_and_records_the_attempt(cloud: int | None) -> None:
    decision = decide(device(cloud=cloud), P, product(P, Policy.PREADD_ONLY))
    assert_no_privileges(decision, Status.LIMITED, Effect.RECORD_PREADD_ATTEMPT, mismatch=cloud is not None)
    assert decision.product_id == P


@pytest.mark.parametrize(("cloud", "fw"), [(P, Q), (Q, P)], ids=["cloud=P,fw=Q", "cloud=Q,fw=P"])
@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("state", [None, *ListState])
def test_mismatch_in_both_directions_is_limited_for_cloud_product(
    cloud: int, fw: int, policy: Policy, state: ListState | None
) -> None:
    team_owned = device(cloud=cloud, owner=Owner("user", A_TEAM_MEMBER[fw]))
    decision = decide(team_owned, fw, product(fw, policy, state))
    assert decision.mismatch
    assert decision.privileges == Privilege.NONE  # nothing in cloud's product, nothing in fw's
    assert decision.status is not Status.OK
    assert Effect.JOIN not in decision.effects  # never moved to fw without an operator's Approve
    assert decision.product_id == fw  # the status refers to the firmware's product


def test_a_product_record_for_another_product_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="fw_product"):
        decide(device(), P, product(Q, Policy.AUTO_APPROVE))


# --- any input --------------------------------------------------------------------------------------

ids = st.integers(min_value=1, max_value=4)  # few ids, so products, teams and owners collide often
owners = st.none() | st.builds(Owner, kind=st.sampled_from(["user", "customer"]) | st.text(max_size=8), id=ids)
devices = st.builds(DeviceFacts, cloud_product_id=st.none() | ids, owner=owners)
products = st.builds(
    ProductFacts,
    id=ids,
    policy=st.sampled_from(Policy),
    team_user_ids=st.frozensets(ids),
    device_list_state=st.none() | st.sampled_from(ListState),
)


def check_deny_by_default(decision: Decision) -> None:
    assert isinstance(decision.status, Status)
    if decision.privileges != Privilege.NONE:
        assert decision.status is Status.OK
        assert decision.privileges == Privilege.all()


@given(device=devices, fw_product_id=st.none() | ids, fw_product=st.none() | products)
def test_decide_never_raises_and_never_grants_without_ok(
    device: DeviceFacts, fw_product_id: int | None, fw_product: ProductFacts | None
) -> None:
    try:
        decision = decide(device, fw_product_id, fw_product)
    except ValueError:
        # The one documented refusal: a product record that describes another product.
        assert fw_product is not None and fw_product.id != fw_product_id
        return
    check_deny_by_default(decision)


@given(device=devices, fw_product=products, exists=st.booleans())
def test_decide_on_consistent_records_always_decides(
    device: DeviceFacts, fw_product: ProductFacts, exists: bool
) -> None:
    decision = decide(device, fw_product.id, fw_product if exists else None)
    check_deny_by_default(decision)
    assert decision.product_id == fw_product.id
    assert decision.mismatch == (device.cloud_product_id not in (None, fw_product.id))
