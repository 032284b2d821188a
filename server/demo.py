"""`fleetgate demo`: the seed's admission cases played out by a real server and simulated devices.

Everything is real: a server on loopback ports in a temporary data directory, devices speaking
the device protocol over TCP, operator actions through the same Operations the HTTP API calls.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from firmware_sim.device import DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status

from .app import Server, open_context
from .config import ServerConfig
from .logs import now, setup_logging
from .ops.operations import Operations
from .rules.model import Owner, Policy, Role

OPERATOR = "user:demo-operator"
WIDGET, GADGET = 4201, 4202


def say(text: str = "") -> None:
    print(text, flush=True)


def _privs(privileges: Privilege) -> str:
    names = [p.name.lower() for p in Privilege if p and p.name and p in privileges]
    return ", ".join(names) if names else "none"


class Demo:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.ops = Operations(server.ctx)
        self.key = server.ctx.server_key.public

    def device(self, name: str) -> DeviceIdentity:
        identity = DeviceIdentity.generate()
        say(f"  [{name}] device {identity.device_id_hex}")
        return identity

    async def register(self, *identities: DeviceIdentity) -> None:
        await self.ops.provision(OPERATOR, [(i.device_id_hex, i.key.public.hex()) for i in identities])

    @asynccontextmanager
    async def connect(self, identity: DeviceIdentity, product: int | None) -> AsyncIterator[SimDevice]:
        stream = await trio.open_tcp_stream("127.0.0.1", self.server.device_port)
        async with connect_device(stream, identity, self.key, DeviceSettings(product_id=product)) as dev:
            await dev.ping()  # the server has confirmed the session
            shown = "no product (development firmware)" if product is None else f"product {product}"
            say(f"    connects reporting {shown}: {self.describe(dev)}")
            yield dev
        with trio.fail_after(5):
            await self.server.ctx.registry.wait_gone(identity.device_id_hex)
        await self.server.ctx.store.flush()

    def describe(self, dev: SimDevice) -> str:
        status = dev.state.status.name if dev.state.status is not None else "?"
        return f"{status}, privileges: {_privs(dev.state.privileges)}"

    async def why(self, identity: DeviceIdentity) -> None:
        entries = await self.server.ctx.store.read(self.server.ctx.store.sync.list_audit, None, identity.device_id_hex)
        decisions = [e for e in entries if e.action == "admission"]
        if decisions:
            say(f"    why: {decisions[-1].reason}")

    async def run(self) -> bool:
        checks: list[bool] = []
        ops = self.ops
        await ops.create_product(OPERATOR, "Widget", product_id=WIDGET, policy=Policy.QUARANTINE)
        await ops.create_product(OPERATOR, "Gadget", product_id=GADGET, policy=Policy.AUTO_APPROVE)
        say(f"Products: Widget ({WIDGET}, policy quarantine), Gadget ({GADGET}, policy auto_approve)")

        say("\n1. A device pre-added to its product gets full product privileges.")
        preadded = self.device("pre-added")
        await self.register(preadded)
        await ops.add_device(OPERATOR, WIDGET, preadded.device_id_hex)
        async with self.connect(preadded, WIDGET) as dev:
            checks.append(dev.state.status is Status.OK and dev.state.privileges == Privilege.all())
        await self.why(preadded)

        say("\n2. An unrecognised device is quarantined; the operator approves it while it is connected.")
        newcomer = self.device("newcomer")
        await self.register(newcomer)
        async with self.connect(newcomer, WIDGET) as dev:
            checks.append(dev.state.status is Status.QUARANTINED)
            await ops.add_device(OPERATOR, WIDGET, newcomer.device_id_hex)
            with trio.fail_after(5):
                await dev.wait_status(Status.OK)
            say(f"    operator approves it; without reconnecting the device now holds: {self.describe(dev)}")
            checks.append(dev.state.privileges == Privilege.all())

        say("\n3. A spoofer presents a registered device ID with a key of its own.")
        spoofer = DeviceIdentity(preadded.device_id, DeviceIdentity.generate().key)
        stream = await trio.open_tcp_stream("127.0.0.1", self.server.device_port)
        try:
            await SimDevice(spoofer, self.key, DeviceSettings(product_id=WIDGET)).handshake(stream)
            checks.append(False)
            say("    accepted?! (this is a bug)")
        except DeviceRefused:
            checks.append(True)
            say("    refused: the device learns nothing; the server log says the key does not match")
        finally:
            await stream.aclose()

        say("\n4. A removed device that comes back lands on the Denied list, not in quarantine.")
        await ops.remove_device(OPERATOR, WIDGET, preadded.device_id_hex, deny=False)
        say(f"    operator removes {preadded.device_id_hex} from Widget")
        async with self.connect(preadded, WIDGET) as dev:
            checks.append(dev.state.status is Status.DENIED)
        await self.why(preadded)

        say("\n5. Auto-approve: an unowned device joins; one owned by an outsider is quarantined.")
        unowned = self.device("unowned")
        owned = self.device("owned by an outsider")
        await self.register(unowned, owned)
        outsider = await ops.create_user(OPERATOR, "outsider", "not-on-the-team")
        member = await ops.create_user(OPERATOR, "engineer", "on-the-team!")
        await ops.team_add(OPERATOR, GADGET, "engineer", Role.DEVELOPER)
        await ops.set_owner(OPERATOR, owned.device_id_hex, Owner("user", outsider.id))
        async with self.connect(unowned, GADGET) as dev:
            checks.append(dev.state.status is Status.OK)
        await self.why(unowned)
        async with self.connect(owned, GADGET) as dev:
            checks.append(dev.state.status is Status.QUARANTINED)
        await self.why(owned)
        say("    ownership moves to a team member; the device reconnects:")
        await ops.set_owner(OPERATOR, owned.device_id_hex, Owner("user", member.id))
        async with self.connect(owned, GADGET) as dev:
            checks.append(dev.state.status is Status.OK)
        await self.why(owned)

        say("\n6. Development firmware gets no product privileges and clears Denied lists.")
        async with self.connect(preadded, None) as dev:
            checks.append(dev.state.status is Status.DEVELOPMENT)
        async with self.connect(preadded, WIDGET) as dev:
            checks.append(dev.state.status is Status.QUARANTINED)
        say("    reporting Widget again, it is merely unrecognised: quarantined rather than denied")

        entries = await self.server.ctx.store.read(self.server.ctx.store.sync.list_audit)
        say(f"\nThe audit trail holds {len(entries)} entries; `fleetgate audit {WIDGET}` shows them on a real server.")
        return all(checks)


async def _main(data_dir: Path) -> bool:
    config = ServerConfig(data_dir=data_dir, device_port=0, api_port=0)
    ctx, _ = open_context(config)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(Server(ctx).serve)
        say(f"Fleetgate demo: a server on 127.0.0.1:{server.device_port} with data in {data_dir}")
        try:
            return await Demo(server).run()
        finally:
            server.shutdown()


def run_demo() -> int:
    setup_logging("error")  # the story is on stdout; the server's JSON log would interleave with it
    started = now()
    with tempfile.TemporaryDirectory(prefix="fleetgate-demo-") as tmp:
        passed = trio.run(_main, Path(tmp))
    verdict = "every case behaved as the rules say" if passed else "SOME CASES DID NOT BEHAVE AS EXPECTED"
    say(f"\nDone in {now() - started:.1f} s: {verdict}.")
    return 0 if passed else 1
