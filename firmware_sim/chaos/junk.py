"""`fleetsim chaos junk`: hostile bytes before and inside the handshake.

N connections, each of one kind: random bytes; the preamble then random bytes; a real device's
first flight (preamble and handshake message 1 with its HELLO, from protocol/) with bits flipped,
bytes inserted or deleted, or cut short; a frame length above the handshake's limit; nothing at
all (a silent socket); a real first flight dripped a byte at a time; a real first flight then
junk where READY belongs; or a real first flight then silence (no READY). Each connection records
what the server did: sent the refusal frame, closed, reset, answered with something else, or
left it open past --wait. Then: is the server alive, does a real device connect and publish, does
the API answer, how much memory the server holds, and is its log free of tracebacks and 5xx.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from dataclasses import dataclass, field

import trio

from protocol import limits
from protocol.connection import PREAMBLE, Connection, ConnectionClosed, Role
from protocol.errors import ProtocolError
from protocol.framing import REFUSAL_FRAME
from protocol.messages import Goodbye, Welcome

from ..identity import DeviceIdentity
from .health import LogFindings, api_answers, device_serves, log_size, register, report_log, rss_kib, scan_log
from .mutate import mutate_bytes
from .raw_link import hello_for
from .report import Check, emit
from .target import ScenarioError, Target, add_server_options, positive, positive_float, target_for

KINDS = ("random", "preamble", "hello", "oversize", "silent", "drip", "after_hello", "no_ready")
WITH_HELLO = frozenset({"hello", "drip", "after_hello", "no_ready"})  # kinds built on a real first flight
DRIP_INTERVAL = 0.25  # seconds between the bytes of a dripped first flight


@dataclass(slots=True)
class Tally:
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)  # kind -> behaviour -> connections
    close_s: list[float] = field(default_factory=list)  # seconds from our last byte to the server's close

    def add(self, kind: str, behaviour: str) -> None:
        self.by_kind.setdefault(kind, Counter())[behaviour] += 1

    def behaviours(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_kind.values():
            total.update(counts)
        return total


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetsim chaos junk", description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=positive, default=1000, metavar="N", help="junk connections (default 1000)")
    p.add_argument("--concurrency", type=positive, default=200, metavar="C", help="connections at once (default 200)")
    p.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated kinds to mix (default all: {','.join(KINDS)})"
    )
    p.add_argument(
        "--wait", type=positive_float, default=15.0, metavar="S",
        help="seconds a connection waits for the server to act on it (default 15: past its handshake deadline)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the junk (default 0)")
    add_server_options(p)
    return p


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ScenarioError(f"--kinds: {', '.join(unknown) or 'none given'}; choose from {', '.join(KINDS)}")
    return kinds


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    kinds = parse_kinds(args.kinds)
    try:
        return trio.run(_run, args, kinds)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # our stdout closed (`| head`): fleetsim exits quietly
        raise ScenarioError(f"junk: {exc}") from None


def junk_bytes(kind: str, rng: random.Random, flight: bytes) -> bytes:
    """What a connection of `kind` sends (drip and silent excepted: see _connection)."""
    if kind == "random":
        return rng.randbytes(rng.randint(1, 600))
    if kind == "preamble":
        return PREAMBLE + rng.randbytes(rng.randint(0, 600))
    if kind == "hello":
        return mutate_bytes(rng, flight)
    if kind == "oversize":
        length = rng.randint(limits.MAX_HELLO_FRAME + 1, 0xFFFF)
        return PREAMBLE + length.to_bytes(2, "big") + rng.randbytes(rng.randint(0, 64))
    if kind == "after_hello":  # a valid HELLO, then junk where READY belongs
        return flight + rng.randbytes(rng.randint(1, 600))
    return flight  # drip, no_ready (a valid HELLO, then silence)


async def _run(args: argparse.Namespace, kinds: list[str]) -> int:
    async with target_for(args) as (target, own):
        log_start = log_size(own.process.log_path) if own else 0
        pid = target.server.pid if target.server else None
        rss_before = rss_kib(pid)
        rng = random.Random(args.seed)
        kind_of = [kinds[i % len(kinds)] for i in range(args.connections)]
        # One registered device per connection built on a real HELLO: the server answers an intact
        # HELLO with WELCOME, and no two connections race on one device's replay counter.
        identities = {i: DeviceIdentity.generate() for i, kind in enumerate(kind_of) if kind in WITH_HELLO}
        await register(target, list(identities.values()))
        tally = Tally()
        limiter = trio.CapacityLimiter(args.concurrency)
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i, kind in enumerate(kind_of):
                flight, conn = device_flight(identities[i], target.server_key) if i in identities else (b"", None)
                junk = junk_bytes(kind, rng, flight)
                await limiter.acquire_on_behalf_of(i)
                nursery.start_soon(_connection, target, kind, junk, conn, args.wait, tally, limiter, i)
        elapsed = trio.current_time() - started
        rss_after = rss_kib(pid)
        serving = await device_serves(target)
        api_ok = await api_answers(target)
        alive = target.server.running if target.server else api_ok
        log = scan_log(own.process.log_path, log_start) if own else None
    return _report(args, tally, elapsed, serving, api_ok, alive, rss_before, rss_after, log)


async def _connection(
    target: Target, kind: str, junk: bytes, conn: Connection | None, wait: float, tally: Tally,
    limiter: trio.CapacityLimiter, token: int,
) -> None:  # fmt: skip
    try:
        tally.add(kind, await _observe(target, kind, junk, conn, wait, tally))
    finally:
        limiter.release_on_behalf_of(token)


async def _observe(target: Target, kind: str, junk: bytes, conn: Connection | None, wait: float, tally: Tally) -> str:
    """Send the junk; what the server did about it."""
    try:
        stream = await trio.open_tcp_stream(target.host, target.port)
    except OSError:
        return "connect_failed"
    received = b""
    try:
        with trio.move_on_after(wait):
            if kind == "drip":
                for i in range(len(junk)):
                    await stream.send_all(junk[i : i + 1])
                    with trio.move_on_after(DRIP_INTERVAL):
                        received += await stream.receive_some(4096)
                        break  # the server acted: refused, closed or answered
            elif kind != "silent":
                await stream.send_all(junk)
            sent_at = trio.current_time()
            while chunk := await stream.receive_some(4096):
                received += chunk
            tally.close_s.append(trio.current_time() - sent_at)
            return behaviour(received, conn)
        return "open" if not received else behaviour(received, conn) + ", then left open"
    except (trio.BrokenResourceError, ConnectionResetError):
        return "reset" if not received else behaviour(received, conn) + ", then reset"
    finally:
        await trio.aclose_forcefully(stream)


def device_flight(identity: DeviceIdentity, server_key: bytes) -> tuple[bytes, Connection]:
    """A simulated device's first flight (preamble and handshake message 1 with its HELLO), and
    its protocol Connection, which reads what the server answers."""
    conn = Connection(Role.CLIENT, identity.key, server_public_key=server_key)
    return conn.send(hello_for(identity)), conn


def behaviour(received: bytes, conn: Connection | None) -> str:
    """What the server's bytes say: refused, closed, or (to a connection whose HELLO was intact)
    WELCOME and then the GOODBYE with its typed reason, read by the device's own Connection."""
    if not received:
        return "closed"
    if received == REFUSAL_FRAME:
        return "refused"
    if conn is None:
        return "answered"
    try:
        conn.receive_data(received)
        conn.receive_data(b"")  # the stream ended there
        if not isinstance(conn.next_event(), Welcome):
            return "answered with something else"
        after = conn.next_event()
    except ProtocolError as exc:
        return f"answered with bad bytes ({exc.reason.name.lower()})"
    if isinstance(after, Goodbye):
        return f"welcomed, then goodbye {after.reason.name.lower()}"
    if isinstance(after, ConnectionClosed):
        return "welcomed, then closed"
    return f"welcomed, then {type(after).__name__}"


def _report(
    args: argparse.Namespace, tally: Tally, elapsed: float, serving: str | None, api_ok: bool, alive: bool,
    rss_before: int | None, rss_after: int | None, log: LogFindings | None,
) -> int:  # fmt: skip
    behaviours = tally.behaviours()
    done = sum(behaviours.values())
    left_open = sum(n for b, n in behaviours.items() if b.endswith("open"))  # "open", "..., then left open"
    close_s = sorted(tally.close_s)
    p99 = round(close_s[min(len(close_s) - 1, int(len(close_s) * 0.99))], 3) if close_s else None
    figures: dict[str, object] = {
        "connections": done, "elapsed_s": round(elapsed, 1), "behaviours": dict(behaviours.most_common()),
        "by_kind": {k: dict(v.most_common()) for k, v in tally.by_kind.items()},
        "close_s_max": round(close_s[-1], 3) if close_s else None, "close_s_p99": p99,
        "rss_kib_before": rss_before, "rss_kib_after": rss_after,
    }  # fmt: skip
    checks = [
        Check("every connection made", done == args.connections and not behaviours["connect_failed"],
              f"{done - behaviours['connect_failed']}/{args.connections}"),
        Check("the server ended every junk connection", left_open == 0,
              f"{left_open} still open after {args.wait:g} s"),
        Check("server alive", alive),
        Check("a real device connects and publishes afterwards", serving is None, serving or ""),
        Check("the API answers afterwards", api_ok),
    ]  # fmt: skip
    lines = [
        f"{done} junk connections in {elapsed:.1f} s",
        "what the server did: " + "; ".join(f"{k}: {v}" for k, v in behaviours.most_common()),
        *(f"  {kind}: " + "; ".join(f"{k}: {v}" for k, v in c.most_common()) for kind, c in tally.by_kind.items()),
        f"server closed them {p99} s (p99), {figures['close_s_max']} s (max) after our last byte",
        f"server RSS: {rss_before} KiB before, {rss_after} KiB after",
    ]
    report_log(log, figures, checks, lines)
    return emit("junk", figures, checks, lines, args.json)
