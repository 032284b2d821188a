"""The webhook outage drill, small: `fleetgate serve` subprocesses, devices publishing over TCP with the
receiver down, a clean restart and a `kill -9`, then the receiver comes up and every event arrives."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio

from firmware_sim.chaos import webhook_outage
from firmware_sim.identity import DeviceIdentity


async def test_no_event_is_lost_across_a_clean_restart_and_a_kill_9(tmp_path: Path) -> None:
    said: list[str] = []
    figures = await webhook_outage.run(
        events=24, outage=3.0, retry_delays="0.5,1", devices=4, work=tmp_path, say=said.append
    )
    assert figures.published == 24, said
    assert figures.missing == 0 and figures.unique_keys == 24, figures
    assert figures.delivered == 24 + figures.duplicates  # duplicates only from a kill between send and mark
    assert figures.counters["pending"] == 0 and figures.counters["triggered"] == 24, figures


def test_the_drill_refuses_bad_arguments_in_one_line() -> None:
    assert webhook_outage.main(["--events", "0"]) == 2


async def test_a_kill_between_the_answer_and_its_record_sends_again_with_the_same_key(tmp_path: Path) -> None:
    """At least once: the receiver holds its 2xx for 3 s and the server is killed meanwhile; after the
    restart the request comes again, with the same Idempotency-Key, and then it is recorded."""
    receiver = webhook_outage.Receiver(answer_after=3.0)
    server = webhook_outage.Serve(tmp_path / "data", "0.5")
    try:
        await server.start()
        token = (server.data_dir / "admin.token").read_text().strip()
        async with (
            httpx.AsyncClient(base_url=server.api, headers={"Authorization": f"Bearer {token}"}) as http,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(receiver.serve)
            identity = DeviceIdentity.generate()
            await webhook_outage.setup_product(http, receiver.port, [identity])
            assert await webhook_outage.publish_events(server, [identity], 1) == 1
            with trio.fail_after(10):
                while not receiver.keys:
                    await receiver.changed.wait()
                    receiver.changed = trio.Event()
            await server.stop(signal.SIGKILL)  # the answer has not come yet
            await server.start()
            with trio.fail_after(20):
                while len(receiver.keys) < 2:
                    await receiver.changed.wait()
                    receiver.changed = trio.Event()
            await trio.sleep(3.5)  # the second answer lands and is recorded
            history = (await http.get(f"/v1/products/{webhook_outage.PRODUCT}/webhooks/1/deliveries")).json()
            nursery.cancel_scope.cancel()
    finally:
        await server.stop()
        server.close()
        receiver.close()
    first, second = receiver.keys
    assert first == second  # the receiver can tell it is the same event
    assert history["counters"]["succeeded"] == 1 and history["counters"]["pending"] == 0
