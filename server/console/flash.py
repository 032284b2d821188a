"""A one-time notice after a form's redirect ("2 devices approved"): a short-lived cookie read by
the next page, so no message text travels in a URL someone else could craft."""

from __future__ import annotations

from urllib.parse import quote, unquote

from fastapi import Request
from starlette.responses import Response

FLASH_COOKIE = "fg_flash"
MAX_FLASH = 300


def set_flash(response: Response, text: str) -> None:
    response.set_cookie(
        FLASH_COOKIE, quote(text[:MAX_FLASH]), max_age=60, path="/console", httponly=True, samesite="strict"
    )


def take_flash(request: Request, response: Response) -> None:
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/console", httponly=True, samesite="strict")


def flash_of(request: Request) -> str | None:
    value = request.cookies.get(FLASH_COOKIE)
    return unquote(value)[:MAX_FLASH] if value else None
