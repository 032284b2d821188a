"""server.api.form_bodies on its own: any JSON or form body becomes the model or an Invalid
naming a field, never another exception; a valid model survives the trip through a form."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import trio
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.requests import Request

from server.api.form_bodies import json_or_form
from server.api.models import UserIn
from server.api.routes_events import EventIn
from server.rules.errors import Invalid

FORM = "application/x-www-form-urlencoded"


def request(body: bytes, content_type: str) -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type.encode())]}
    return Request(scope, receive)


def read(model: type[EventIn] | type[UserIn], body: bytes, content_type: str, **renames: str) -> object:
    async def go() -> object:
        try:
            return await json_or_form(model, renames)(request(body, content_type))
        except Invalid as exc:
            return exc

    return trio.run(go)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=6))
@example([("name", "x"), ("ttl", "--5")])  # digits after stripping every "-": int() refuses it
@example([("name", "x"), ("ttl", "\u00b2")])  # a digit to str.isdigit(), not to int()
def test_any_form_is_the_model_or_an_invalid_field(pairs: list[tuple[str, str]]) -> None:
    result = read(EventIn, urlencode(pairs).encode(), FORM, email="name")
    assert isinstance(result, EventIn | Invalid)
    if isinstance(result, Invalid):
        assert result.field is not None  # names what is wrong


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8))  # fmt: skip
def test_any_json_is_the_model_or_an_invalid_field(value: object) -> None:
    body = json.dumps(value).encode()
    for renames in ({}, {"email": "username"}):
        assert isinstance(read(UserIn, body, "application/json", **renames), UserIn | Invalid)


@given(
    name=st.text(min_size=1, max_size=20).filter(lambda t: t.strip() == t and "\x00" not in t),
    data=st.text(max_size=50).filter(lambda t: "\x00" not in t and "\r" not in t),
    private=st.booleans(),
    ttl=st.integers(0, 3600),
)
def test_a_valid_event_survives_a_form(name: str, data: str, private: bool, ttl: int) -> None:
    form = urlencode({"name": name, "data": data, "private": str(private).lower(), "ttl": ttl, "access_token": "x"})
    assert read(EventIn, form.encode(), FORM) == EventIn(name=name, data=data, private=private, ttl=ttl)


def test_form_text_that_is_not_the_type_names_the_field() -> None:
    for form, field in [
        ("name=x&private=maybe", "private"),
        ("name=x&ttl=soon", "ttl"),
        ("name=x&name=y", "name"),
        ("name=x&ttl=--5", "ttl"),
        ("name=x&ttl=%C2%B2", "ttl"),
    ]:
        result = read(EventIn, form.encode(), FORM)
        assert isinstance(result, Invalid) and result.field == field, (form, result)
    clash = read(UserIn, b'{"email": "a", "username": "b", "password": "p"}', "application/json", email="username")
    assert isinstance(clash, Invalid)
    assert isinstance(read(UserIn, b"not json", "application/json", email="username"), Invalid)
    assert isinstance(read(UserIn, b"", "application/json"), Invalid)
