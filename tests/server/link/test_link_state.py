"""link/state.py without bytes: every transition in the table, every other step refused, first close reason wins."""

from __future__ import annotations

import itertools

import pytest

from protocol.codes import CloseReason
from server.link.state import TRANSITIONS, InvalidStep, LinkState, Stage, Step


def at(stage: Stage) -> LinkState:
    state = LinkState()
    path = {Stage.HANDSHAKE: [], Stage.CONFIRMING: [Step.READY], Stage.CONFIRMED: [Step.READY, Step.COMMITTED]}
    for step in path[stage]:
        state.advance(step)
    assert state.stage is stage
    return state


def test_a_connection_starts_in_the_handshake_unregistered_and_open() -> None:
    state = LinkState()
    assert state.stage is Stage.HANDSHAKE and not state.registered and not state.confirmed
    assert state.close_reason is None and state.close_detail == ""


@pytest.mark.parametrize(("stage", "step"), list(itertools.product(Stage, Step)))
def test_every_step_follows_the_table_or_raises(stage: Stage, step: Step) -> None:
    state = at(stage)
    if (stage, step) in TRANSITIONS:
        state.advance(step)
        assert state.stage is TRANSITIONS[stage, step]
    else:
        with pytest.raises(InvalidStep):
            state.advance(step)
        assert state.stage is stage


@pytest.mark.parametrize(
    ("stage", "registered", "confirmed"),
    [(Stage.HANDSHAKE, False, False), (Stage.CONFIRMING, True, False), (Stage.CONFIRMED, True, True)],
)
def test_what_each_stage_means(stage: Stage, registered: bool, confirmed: bool) -> None:
    state = at(stage)
    assert (state.registered, state.confirmed) == (registered, confirmed)


@pytest.mark.parametrize("stage", list(Stage))
def test_closing_begins_in_any_stage_and_the_first_reason_wins(stage: Stage) -> None:
    state = at(stage)
    assert state.set_close_reason(CloseReason.REPLACED, "newer")
    assert not state.set_close_reason(CloseReason.IDLE_TIMEOUT, "later")
    assert (state.close_reason, state.close_detail, state.stage) == (CloseReason.REPLACED, "newer", stage)


def test_a_closing_session_may_still_be_confirmed() -> None:
    """The confirming transaction can commit after the session began closing: the store has it."""
    state = at(Stage.CONFIRMING)
    state.set_close_reason(CloseReason.CONNECTION_LOST)
    state.advance(Step.COMMITTED)
    assert state.confirmed
