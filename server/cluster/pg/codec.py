"""Control messages as NOTIFY payloads: JSON, each under PostgreSQL's 8000-byte limit.

A payload carries its sender's node id and a per-node sequence number (how a node knows it has
handled its own messages: PgBus.caught_up). Device lists too long for one payload are split into
several messages; a text field too long for one payload is cut. `decode` never raises: a payload
it does not understand (a newer node's message kind) is None, logged by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from protocol.codes import OtaAbortReason

from ..messages import (
    AbortFirmware,
    ControlMessage,
    OfferFirmware,
    ReevaluateDevice,
    ReevaluateProduct,
    SessionReplaced,
    WakeRollouts,
    WebhooksChanged,
)

PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses 8000 and more
TEXT_LIMIT = 1000  # characters of an actor or a detail kept in a payload


@dataclass(frozen=True, slots=True)
class Envelope:
    node_id: str
    seq: int
    message: ControlMessage


def _body(message: ControlMessage) -> dict[str, Any]:
    if isinstance(message, ReevaluateDevice):
        return {"t": "reeval", "dev": message.device_id, "actor": message.actor[:TEXT_LIMIT]}
    if isinstance(message, ReevaluateProduct):
        return {"t": "reeval_product", "product": message.product_id, "actor": message.actor[:TEXT_LIMIT]}
    if isinstance(message, OfferFirmware):
        devs = None if message.device_ids is None else list(message.device_ids)
        return {"t": "offer", "devs": devs, "product": message.product_id}
    if isinstance(message, AbortFirmware):
        detail = message.detail[:TEXT_LIMIT]
        return {"t": "abort", "devs": list(message.device_ids), "reason": int(message.reason), "detail": detail}
    if isinstance(message, SessionReplaced):
        return {"t": "replaced", "dev": message.device_id, "counter": message.counter}
    if isinstance(message, WebhooksChanged):
        return {"t": "webhooks_changed", "product": message.product_id}
    return {"t": "wake_rollouts"}


def _dump(node_id: str, seq: int, body: dict[str, Any]) -> str:
    return json.dumps({"n": node_id, "s": seq, "m": body}, separators=(",", ":"), ensure_ascii=False)


def encode(node_id: str, next_seq: Callable[[], int], message: ControlMessage) -> Iterator[str]:
    """The payloads that carry `message` (more than one when its device list is long), in order."""
    body = _body(message)
    payload = _dump(node_id, next_seq(), body)
    if len(payload.encode()) <= PAYLOAD_LIMIT:
        yield payload
        return
    devs = body.get("devs")
    if not devs:
        raise ValueError(f"a {body['t']} message does not fit in a NOTIFY payload")
    # Greedy split: each part holds as many device IDs as fit (sizes counted, not re-encoded).
    base = len(_dump(node_id, 2**62, body | {"devs": []}).encode())
    part: list[str] = []
    size = base
    for dev in devs:
        extra = len(json.dumps(dev, ensure_ascii=False).encode()) + (1 if part else 0)  # the comma
        if part and size + extra > PAYLOAD_LIMIT:
            yield _dump(node_id, next_seq(), body | {"devs": part})
            part, size, extra = [], base, extra - 1
        part.append(dev)
        size += extra
    yield _dump(node_id, next_seq(), body | {"devs": part})


def decode(payload: str) -> Envelope | None:
    """The envelope in `payload`, or None when it is not one this node understands."""
    try:
        raw = json.loads(payload)
        node_id, seq, body = raw["n"], raw["s"], raw["m"]
        if not isinstance(node_id, str) or type(seq) is not int or not isinstance(body, dict):
            return None
        message = _message(body)
    except (ValueError, KeyError, TypeError):
        return None
    return None if message is None else Envelope(node_id, seq, message)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _devs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return tuple(_str(v) for v in value)


def _message(body: dict[str, Any]) -> ControlMessage | None:
    kind = body.get("t")
    if kind == "reeval":
        return ReevaluateDevice(_str(body["dev"]), _str(body["actor"]))
    if kind == "reeval_product":
        return ReevaluateProduct(_int(body["product"]), _str(body["actor"]))
    if kind == "offer":
        devs, product = body["devs"], body["product"]
        return OfferFirmware(None if devs is None else _devs(devs), None if product is None else _int(product))
    if kind == "abort":
        return AbortFirmware(_devs(body["devs"]), OtaAbortReason(_int(body["reason"])), _str(body["detail"]))
    if kind == "replaced":
        return SessionReplaced(_str(body["dev"]), _int(body["counter"]))
    if kind == "wake_rollouts":
        return WakeRollouts()
    if kind == "webhooks_changed":
        return WebhooksChanged(_int(body["product"]))
    return None
