"""The load: several worker processes (multiprocessing, spawn), each with a share of the fleet.

Device i of the fleet lives in worker i % W, so the first n devices of the fleet are spread
evenly over the workers whatever n is.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import Any

from ..identity import DeviceIdentity
from .machine import cpu_seconds
from .stats import split_evenly
from .worker import WorkerSpec, worker_main

COMMAND_LIMIT = 900.0  # seconds any one command may take before the run is declared stuck


class WorkerFailed(Exception):
    pass


def source_addresses(count: int) -> list[str]:
    """Loopback source addresses 127.0.0.2 .. : each has its own ~28,000 ephemeral ports."""
    return [f"127.0.0.{2 + i}" for i in range(count)]


class ProcessPool:
    """Processes (spawn) each running `target(spec, pipe)`, driven by commands over pipes."""

    def __init__(self, target: Callable[[Any, Pipe], None], specs: list[Any], name: str = "bench-worker") -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list[mp.process.BaseProcess] = []
        for w, spec in enumerate(specs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(spec, child), name=f"{name}-{w}", daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def cpu(self) -> float:
        """CPU seconds used so far by all workers (their own accounting)."""
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):  # it has just exited
                total += cpu_seconds(pid)
        return total

    def call(self, command: str, per_worker: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send each worker its command and wait for every answer."""
        for pipe, args in zip(self.pipes, per_worker, strict=True):
            pipe.send((command, args))
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + COMMAND_LIMIT
        while len(answers) < len(self.pipes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailed(f"{command}: workers did not answer within {COMMAND_LIMIT:g} s")
            ready = wait([p for i, p in enumerate(self.pipes) if i not in answers], timeout=left)
            for ready_pipe in ready:
                assert isinstance(ready_pipe, Pipe)
                i = self.pipes.index(ready_pipe)
                try:
                    answers[i] = ready_pipe.recv()
                except EOFError:
                    raise WorkerFailed(f"{command}: worker {i} exited (exit code {self.procs[i].exitcode})") from None
        return [answers[i] for i in range(len(self.pipes))]

    def call_one(self, index: int, command: str, **args: Any) -> dict[str, Any]:
        self.pipes[index].send((command, args))
        if not self.pipes[index].poll(COMMAND_LIMIT):
            raise WorkerFailed(f"{command}: worker {index} did not answer within {COMMAND_LIMIT:g} s")
        answer: dict[str, Any] = self.pipes[index].recv()
        return answer

    def broadcast(self, command: str, **args: Any) -> list[dict[str, Any]]:
        return self.call(command, [args] * len(self.pipes))

    def shutdown(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit", {}))
        for proc in self.procs:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self.pipes:
            pipe.close()


class WorkerPool(ProcessPool):
    """The fleet's load: device i of the fleet lives in worker i % W."""

    def __init__(
        self,
        identities: list[DeviceIdentity],
        workers: int,
        host: str,
        port: int,
        server_public_key: bytes,
        cores: frozenset[int] | None,
        ports: tuple[int, ...] = (),
    ) -> None:
        """`ports`: several nodes' device ports, the fleet spread over them in turn (else `port`)."""
        self.workers = max(1, min(workers, len(identities) or 1))
        specs = [
            WorkerSpec(w, host, port, server_public_key,
                       [(d.device_id, d.key.private) for d in identities[w :: self.workers]], cores, ports)
            for w in range(self.workers)
        ]  # fmt: skip
        super().__init__(worker_main, specs)

    def share(self, n: int) -> list[int]:
        """How many of the fleet's first n devices each worker holds."""
        return split_evenly(n, self.workers)

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Per worker, the slice of its own devices that are fleet devices [start, stop)."""
        a, b = self.share(start), self.share(stop)
        return list(zip(a, b, strict=True))

    def prepare(self, start: int, stop: int, product_id: int | None, firmware_version: int = 1) -> float:
        answers = self.call(
            "prepare",
            [dict(start=a, stop=b, product_id=product_id, firmware_version=firmware_version)
             for a, b in self.ranges(start, stop)],
        )  # fmt: skip
        return sum(float(a["cpu_s"]) for a in answers)

    def connect(
        self,
        start: int,
        stop: int,
        start_at: float,
        rate: float | None,
        concurrency: int | None,
        timeout: float,
        sources: list[str],
    ) -> list[tuple[float, float, str]]:
        """Connect fleet devices [start, stop); per device (started, welcomed, error)."""
        per_worker = []
        for w, (a, b) in enumerate(self.ranges(start, stop)):
            interval = self.workers / rate if rate else 0.0
            offset = w / rate if rate else 0.0  # interleave the workers' schedules
            per_worker.append(
                dict(start=a, stop=b, start_at=start_at + offset, interval=interval, limit=timeout, sources=sources,
                     concurrency=(max(1, concurrency // self.workers) if concurrency else None))
            )  # fmt: skip
        answers = self.call("connect", per_worker)
        return [tuple(r) for a in answers for r in a["results"]]

    def count(self) -> dict[int, int]:
        """Online privileged devices per port."""
        total: dict[int, int] = {}
        for answer in self.broadcast("count"):
            for port, n in answer["per_port"].items():
                total[int(port)] = total.get(int(port), 0) + int(n)
        return total

    def revive(
        self, dead: int, ports: list[int], limit: float, sources: list[str]
    ) -> list[tuple[float, float, str, int]]:
        """The devices that were on port `dead` reconnect to `ports`; per device (link ended, welcomed
        again or 0, error, attempts)."""
        answers = self.broadcast("revive", dead=dead, ports=ports, limit=limit, sources=sources)
        return [tuple(r) for a in answers for r in a["results"]]

    def retry(self, ports: list[int], limit: float, sources: list[str]) -> list[tuple[float, float, str, int]]:
        """The devices whose connect failed try again on `ports`; per device as revive's."""
        answers = self.broadcast("retry", ports=ports, limit=limit, sources=sources)
        return [tuple(r) for a in answers for r in a["results"]]

    def trim(self, n: int) -> int:
        """Keep the first n online devices (spread over the workers as the fleet is); close the rest."""
        return sum(int(a["closed"]) for a in self.call("trim", [dict(keep=k) for k in self.share(n)]))

    def close_all(self) -> int:
        return sum(int(a["closed"]) for a in self.broadcast("close"))
