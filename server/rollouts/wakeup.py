"""A doorbell for the rollout scheduler: anything that may free a slot or change a plan rings it."""

from __future__ import annotations

import trio


class Wakeup:
    def __init__(self) -> None:
        self._event = trio.Event()

    def kick(self) -> None:
        """Safe from any task on the event loop; costs nothing when nobody waits."""
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until kicked or `seconds` have passed, whichever is first."""
        with trio.move_on_after(seconds):
            await self._event.wait()
        self._event = trio.Event()
