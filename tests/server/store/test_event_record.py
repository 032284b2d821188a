"""EventRecord's hand-written __init__ (a frozen dataclass's own costs ~4x as much) still builds the
same frozen record: every field, by position or keyword, with the dataclass's defaults, equality,
hash, replace, copy and pickle."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.store.records import EventRecord

VALUES = (
    st.text(max_size=30),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.integers(0, 2**31),
    st.booleans(),
    st.floats(allow_nan=False),
    st.none() | st.integers(1, 2**31),
    st.none() | st.integers(1, 2**62),
    st.none() | st.text(max_size=30),
    st.booleans(),
)


@given(st.tuples(*VALUES))
def test_positional_and_keyword_construction_set_every_field(values: tuple[object, ...]) -> None:
    names = [f.name for f in dataclasses.fields(EventRecord)]
    by_position = EventRecord(*values)  # type: ignore[arg-type]
    by_keyword = EventRecord(**dict(zip(names, values, strict=True)))  # type: ignore[arg-type]
    assert [getattr(by_position, n) for n in names] == list(values)
    assert by_position == by_keyword and hash(by_position) == hash(by_keyword)
    assert pickle.loads(pickle.dumps(by_position)) == by_position == copy.copy(by_position)


def test_defaults_frozen_and_with_id() -> None:
    event = EventRecord("aa" * 12, "t", b"x", 60, False, 1.0)
    assert (event.product_id, event.id, event.to_device, event.webhooks) == (None, None, None, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    assert event.with_id(7) == dataclasses.replace(event, id=7)
    with pytest.raises(TypeError):
        EventRecord("aa" * 12, "t", b"x", 60, False)  # type: ignore[call-arg]
