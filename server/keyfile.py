"""Key files an operator uploads: `device_id,public_key` CSV, never a private key file.

`fleetsim keygen` writes identities.csv (device_id,private_key) beside devices.csv
(device_id,public_key). One 32-byte key looks like another, so the header is what says which file
this is; both the CLI (before sending anything) and the API refuse a private one.
"""

from __future__ import annotations


def private_key_column(text: str) -> str | None:
    """The header column of `text` that names a private key, or None."""
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return next((c.strip() for c in first.split(",") if "private" in c.lower()), None)
