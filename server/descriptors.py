"""The process's descriptor limit, raised to what the system allows before serving.

Every device connection is a descriptor, and in a flood so is every connection waiting for its
address's turn (link/acceptor.py). Many systems start processes with a soft limit of 1,024 under a
hard limit many times higher; the soft limit is the process's own to raise.
"""

from __future__ import annotations

import resource


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (when the hard one is finite); (before, now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft, soft  # refused (a sandbox): serve with what there is
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
