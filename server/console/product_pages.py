"""What the rollouts, firmware, events, audit, webhooks and settings pages share: a form's
answer, a redirect back with a one-time notice (flash.py)."""

from __future__ import annotations

from starlette.responses import RedirectResponse

from .flash import set_flash


def back(path: str, notice: str = "") -> RedirectResponse:
    """After a form acted: back to a page (303, so a reload does not post again), saying what happened."""
    response = RedirectResponse(path, status_code=303)
    if notice:
        set_flash(response, notice)
    return response
