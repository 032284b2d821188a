"""Sealing secrets for the database: round trip, binding to a place, and tampering."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.store.sealing import PREFIX, CannotOpen, Sealer, is_sealed
from server.store.secrets_key import ENV_KEY, ENV_KEY_FILE, SecretsKeyError, from_environment, parse_key

KEY = bytes(range(32))
SEALER = Sealer(KEY)
places = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
texts = st.text(st.characters(exclude_categories=()), max_size=300)  # lone surrogates included


@given(texts, places)
def test_what_is_sealed_opens_to_the_same_text_and_never_shows_it(plain: str, place: str) -> None:
    sealed = SEALER.seal(plain, place)
    assert is_sealed(sealed) and sealed.isascii()
    assert SEALER.open(sealed, place) == plain
    if len(plain) >= 4:  # shorter texts turn up in base64 by chance
        assert plain not in sealed.removeprefix("fgs1:")  # the version prefix is not the value


def test_two_seals_of_one_value_differ() -> None:
    assert SEALER.seal("hunter2", "p") != SEALER.seal("hunter2", "p")


@given(texts, places, places)
def test_a_value_moved_to_another_place_does_not_open(plain: str, place: str, other: str) -> None:
    if other == place:
        return
    with pytest.raises(CannotOpen):
        SEALER.open(SEALER.seal(plain, place), other)


@given(texts, st.data())
def test_any_changed_byte_is_refused(plain: str, data: st.DataObject) -> None:
    raw = bytearray(base64.b64decode(SEALER.seal(plain, "webhooks/1/secret")[len(PREFIX) :]))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CannotOpen):
        SEALER.open(PREFIX + base64.b64encode(bytes(raw)).decode(), "webhooks/1/secret")


def test_another_key_does_not_open_it() -> None:
    sealed = SEALER.seal("s3cret", "webhooks/1/secret")
    with pytest.raises(CannotOpen, match="does not open with this secrets key"):
        Sealer(os.urandom(32)).open(sealed, "webhooks/1/secret")


@pytest.mark.parametrize(
    "sealed", ["", "s3cret", PREFIX, PREFIX + "not base64!", PREFIX + base64.b64encode(b"short").decode()]
)
def test_what_is_not_a_sealed_value_is_refused(sealed: str) -> None:
    with pytest.raises(CannotOpen):
        SEALER.open(sealed, "webhooks/1/secret")


def test_a_key_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(b"\0" * 16)


def test_a_key_is_written_in_hex_or_base64() -> None:
    assert parse_key(KEY.hex() + "\n", "f") == KEY
    assert parse_key(base64.b64encode(KEY).decode(), "f") == KEY
    for bad in ["", "00" * 31, "zz" * 32, base64.b64encode(b"\0" * 31).decode()]:
        with pytest.raises(SecretsKeyError, match="not a 32-byte key"):
            parse_key(bad, "f")


def test_the_deployment_gives_the_key_by_flag_file_or_value() -> None:
    flag = Path("/etc/fleetgate/key")
    assert from_environment({}, None) == (None, None)
    assert from_environment({ENV_KEY: KEY.hex()}, None) == (KEY, None)
    assert from_environment({ENV_KEY_FILE: "/run/k"}, None) == (None, Path("/run/k"))
    assert from_environment({ENV_KEY: KEY.hex(), ENV_KEY_FILE: "/run/k"}, flag) == (None, flag)  # the flag wins
    with pytest.raises(SecretsKeyError, match="not both"):
        from_environment({ENV_KEY: KEY.hex(), ENV_KEY_FILE: "/run/k"}, None)
    with pytest.raises(SecretsKeyError, match=r"\$FLEETGATE_SECRETS_KEY: not a 32-byte key"):
        from_environment({ENV_KEY: "short"}, None)
