"""`fleetsim chaos malformed`: well-encrypted but malformed messages after the handshake.

Registered devices complete the handshake, then send messages made by mutating valid msgpack
payloads (a field's type or size, the message type, missing or extra items, nesting, flipped
bytes, messages of the wrong direction), each sealed properly with the session's cipher. After
each one a PING asks whether the link is still up. What the device sees is counted: a PONG (the
server took the message), the server's GOODBYE with its typed reason, or a stream ended without
one. Every message the protocol rejects must end in a GOODBYE naming the reason.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from dataclasses import dataclass, field

import trio

from protocol import limits
from protocol.codes import CloseReason
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.messages import Goodbye, Ping, Pong, decode_message

from ..identity import DeviceIdentity
from .health import LogFindings, api_answers, device_serves, log_size, register, report_log, rss_kib, scan_log
from .mutate import malformed_payload
from .raw_link import LinkRefused, RawLink, open_raw_link
from .report import Check, emit
from .target import ScenarioError, Target, add_server_options, positive, target_for

ANSWER_LIMIT = 10.0  # seconds the server has to answer a message (PONG or GOODBYE)
PROBE_SEQ = 4_000_000_000  # the PING after each message: a seq no mutation uses


@dataclass(slots=True)
class Tally:
    sent: int = 0  # malformed messages sent
    invalid: int = 0  # ... of which protocol/ itself rejects when decoding
    # answered | goodbye:<reason> | eof | closed_after_our_goodbye | timeout | bad_answer:<reason>
    outcomes: Counter[str] = field(default_factory=Counter)
    untyped: int = 0  # rejected messages that did not end in a typed GOODBYE
    connects: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetsim chaos malformed", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=positive, default=1000, metavar="N", help="malformed messages (default 1000)")
    p.add_argument("--concurrency", type=positive, default=16, metavar="C", help="devices at once (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    add_server_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return trio.run(_run, args)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # our stdout closed (`| head`): fleetsim exits quietly
        raise ScenarioError(f"malformed: {exc}") from None


def expected_rejection(payload: bytes) -> CloseReason | None:
    """The typed reason a server must close with for this plaintext, when protocol/ rejects it
    whatever the session's state; None for a message that decodes."""
    if len(payload) + limits.TAG_LEN > limits.SERVER_RX_MAX_FRAME:
        return CloseReason.FRAME_TOO_LARGE
    try:
        decode_message(payload)
    except RemoteProtocolError as exc:
        return exc.reason
    return None


async def _run(args: argparse.Namespace) -> int:
    async with target_for(args) as (target, own):
        log_start = log_size(own.process.log_path) if own else 0
        rss_before = rss_kib(target.server.pid if target.server else None)
        identities = [DeviceIdentity.generate() for _ in range(args.concurrency)]
        await register(target, identities)
        tally = Tally()
        budget = [args.messages]
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i, identity in enumerate(identities):
                nursery.start_soon(_worker, target, identity, random.Random(f"{args.seed}/{i}"), budget, tally)
        elapsed = trio.current_time() - started
        serving = await device_serves(target)
        api_ok = await api_answers(target)
        rss_after = rss_kib(target.server.pid if target.server else None)
        alive = target.server.running if target.server else api_ok
        log = scan_log(own.process.log_path, log_start) if own else None
        return _report(args, tally, elapsed, serving, api_ok, alive, rss_before, rss_after, log)


async def _worker(
    target: Target, identity: DeviceIdentity, rng: random.Random, budget: list[int], tally: Tally
) -> None:
    """One device: connect, send malformed messages until the server closes, connect again."""
    while budget[0] > 0:
        stream: trio.SocketStream | None = None
        try:
            with trio.fail_after(ANSWER_LIMIT):
                stream = await trio.open_tcp_stream(target.host, target.port)
                link = await open_raw_link(stream, identity, target.server_key)
        except (OSError, trio.TooSlowError, LinkRefused, ProtocolError, trio.BrokenResourceError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            tally.connect_failures[type(exc).__name__] += 1
            if sum(tally.connect_failures.values()) > 50:
                return  # the server is not taking devices: the health check says so
            await trio.sleep(0.2)
            continue
        tally.connects += 1
        try:
            while budget[0] > 0:
                budget[0] -= 1
                payload = malformed_payload(rng)[: limits.MAX_TRANSPORT_PLAINTEXT]
                if not await _one(link, payload, tally):
                    break
        finally:
            await link.aclose()


async def _one(link: RawLink, payload: bytes, tally: Tally) -> bool:
    """Send one message and a PING; count what the server answered. True while the link is up."""
    tally.sent += 1
    expected = expected_rejection(payload)
    tally.invalid += expected is not None
    outcome = "timeout"
    try:
        with trio.move_on_after(ANSWER_LIMIT):
            await link.send_plaintext(payload)
            await link.send(Ping(PROBE_SEQ))
            outcome = await _answer(link)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        outcome = "eof"  # the server closed while we wrote: its GOODBYE may be lost to the reset
    except RemoteProtocolError as exc:
        outcome = f"bad_answer:{exc.reason.name.lower()}"
    if _is_goodbye(payload) and outcome == "eof":
        outcome = "closed_after_our_goodbye"  # the server answers a GOODBYE by closing: nothing to say
    tally.outcomes[outcome] += 1
    if expected is not None and not outcome.startswith("goodbye:"):
        tally.untyped += 1
    return outcome == "answered"


def _is_goodbye(payload: bytes) -> bool:
    try:
        return isinstance(decode_message(payload), Goodbye)
    except RemoteProtocolError:
        return False


async def _answer(link: RawLink) -> str:
    while True:
        message = await link.receive()
        if message is None:
            return "eof"
        if isinstance(message, Goodbye):
            return f"goodbye:{message.reason.name.lower()}"
        if isinstance(message, Pong) and message.seq == PROBE_SEQ:
            return "answered"


def _report(
    args: argparse.Namespace, tally: Tally, elapsed: float, serving: str | None, api_ok: bool, alive: bool,
    rss_before: int | None, rss_after: int | None, log: LogFindings | None,
) -> int:  # fmt: skip
    outcomes = dict(tally.outcomes.most_common())
    figures: dict[str, object] = {
        "messages": tally.sent, "rejected_by_protocol": tally.invalid, "outcomes": outcomes,
        "untyped_closes": tally.untyped, "connections": tally.connects,
        "connect_failures": dict(tally.connect_failures), "elapsed_s": round(elapsed, 1),
        "rss_kib_before": rss_before, "rss_kib_after": rss_after,
    }  # fmt: skip
    checks = [
        Check("every message sent", tally.sent == args.messages, f"{tally.sent}/{args.messages}"),
        Check(
            "every rejected message ends in a typed GOODBYE",
            tally.untyped == 0,
            f"{tally.invalid - tally.untyped}/{tally.invalid}",
        ),
        Check("no answer missing", tally.outcomes["timeout"] == 0, f"{tally.outcomes['timeout']} timed out"),
        Check("server alive", alive),
        Check("a real device connects and publishes afterwards", serving is None, serving or ""),
        Check("the API answers afterwards", api_ok),
    ]
    lines = [
        f"{tally.sent} malformed messages over {tally.connects} connections in {elapsed:.1f} s "
        f"({tally.invalid} rejected by protocol/ whatever the state)",
        "what the device saw: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()),
        f"server RSS: {rss_before} KiB before, {rss_after} KiB after",
    ]
    report_log(log, figures, checks, lines)
    return emit("malformed", figures, checks, lines, args.json)
