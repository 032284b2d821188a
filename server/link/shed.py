"""What admission sheds, counted by reason, and logged as one line per burst (never one per socket).

A flood is thousands of junk connections: a line each would bury the log (and cost more than the
junk). `ShedCounters.shed` only counts; `report` runs beside the accept loops and writes one
`admission_shed` line when a burst ends (a quiet second), or every REPORT_EVERY seconds while it
lasts, with the counts by reason and the addresses that shed the most.
"""

from __future__ import annotations

import collections
import enum
import logging

import trio

from ..logs import log_event

log = logging.getLogger("fleetgate.admission")

BURST_QUIET = 1.0  # seconds with nothing shed that end a burst
REPORT_EVERY = 10.0  # seconds between lines while a burst lasts
TOP_ADDRESSES = 3


class ShedReason(enum.StrEnum):
    ADDRESS_SHARE = "address_share"  # its address held its share of handshake slots: closed at accept
    FIRST_MESSAGE_TIMEOUT = "first_message_timeout"  # no complete HELLO within first_message_timeout
    DATABASE_LOST = "database_lost"  # this node cannot reach the database: closed at accept, unread


class ShedCounters:
    def __init__(self) -> None:
        self.totals: collections.Counter[ShedReason] = collections.Counter()  # for the server's life
        self._burst: collections.Counter[ShedReason] = collections.Counter()
        self._addresses: collections.Counter[str] = collections.Counter()
        self._news = trio.Event()

    def shed(self, reason: ShedReason, address: str) -> None:
        self.totals[reason] += 1
        self._burst[reason] += 1
        self._addresses[address] += 1
        self._news.set()

    def as_dict(self) -> dict[str, int]:
        return {reason.value: self.totals[reason] for reason in ShedReason}

    async def report(self) -> None:
        """Until cancelled: one line per burst, or per REPORT_EVERY s of a long one; when cancelled
        (the server stopping), the line of the burst in progress."""
        since = trio.current_time()
        try:
            while True:
                await self._news.wait()
                since = trio.current_time()
                while self._news.is_set():
                    self._news = trio.Event()
                    await trio.sleep(BURST_QUIET)
                    ended = not self._news.is_set()
                    if ended or trio.current_time() - since >= REPORT_EVERY:
                        self._log(trio.current_time() - since, ended)
                        since = trio.current_time()
        finally:
            if self._burst:
                self._log(trio.current_time() - since, ended=True)

    def _log(self, seconds: float, ended: bool) -> None:
        burst, addresses = self._burst, self._addresses
        self._burst, self._addresses = collections.Counter(), collections.Counter()
        log_event(
            log,
            "admission_shed",
            logging.WARNING,
            **{reason.value: burst[reason] for reason in ShedReason},
            addresses=len(addresses),
            top_addresses=[[address, n] for address, n in addresses.most_common(TOP_ADDRESSES)],
            seconds=round(seconds, 1),
            burst_ended=ended,
            totals=self.as_dict(),
        )
