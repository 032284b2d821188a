"""The cluster benchmark's report: one table, a figure per line and a configuration per column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .report import cell, table

Row = dict[str, Any]


def _get(*path: str) -> Callable[[Row], Any]:
    def read(row: Row) -> Any:
        value: Any = row
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return read


def _pcts(*path: str) -> Callable[[Row], Any]:
    def read(row: Row) -> str | None:
        summary = _get(*path)(row)
        if not summary or summary.get("p50_ms") is None:
            return None
        return " / ".join(cell(summary.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms"))

    return read


def _per_node(row: Row) -> str | None:
    counts = _get("hold", "per_node")(row)
    return ", ".join(f"{k} {cell(v)}" for k, v in sorted(counts.items())) if counts else None


def _rss(row: Row) -> str | None:
    nodes = _get("hold", "nodes")(row)
    return ", ".join(f"{cell(n['rss_kib'] // 1024)}" for n in nodes) if nodes else None


def _probe_failures(row: Row) -> str | None:
    latency = row.get("latency") or {}
    if "error" in latency:
        return f"all: {latency['error'][:60]}"
    failures = latency.get("failures")
    if failures is None:
        return None
    return ", ".join(f"{k} {v['count']}" for k, v in failures.items()) or "0"


def _storm_title(rows: list[Row]) -> str:
    sizes = {r["storm"]["devices"] for r in rows if r.get("storm")}
    return f"connect storm ({', '.join(cell(s) for s in sorted(sizes))} devices)"


FIGURES: list[tuple[str, Callable[[Row], Any]]] = [
    ("load average when the configuration started", _get("loadavg_at_start")),
    ("devices held: authenticated and privileged", _get("hold", "privileged")),
    ("... per node (the load's count)", _per_node),
    ("... live sessions in the store (PostgreSQL), s after the last WELCOME", lambda r: _confirmed(r)),
    ("... grown to that in s (512 handshakes in flight)", _get("hold", "grow_s")),
    ("... RSS per node, MiB", _rss),
    ("... idle CPU, share of one core (nodes + PostgreSQL backends)", _get("hold", "idle_busy")),
    ("... of which nodes / backends", lambda r: _two(r, "hold", "idle_busy_nodes", "idle_busy_backends")),
    ("... devices that failed to come online at first / again after retrying", lambda r: _retry(r)),
    ("STORM: privileged", _get("storm", "privileged")),
    ("... failures", _get("storm", "failures")),
    ("... handshakes/s", _get("storm", "handshakes_per_s")),
    ("... all privileged after s", _get("storm", "last_privileged_s")),
    ("... CPU per connection, us (nodes + backends)", _get("storm", "server_cpu_per_conn_us")),
    ("... cores busy (all nodes + backends; 2 at most)", _get("storm", "server_busy")),
    ("publish: publishers (on every node)", _get("publish", "publishers")),
    ("... acked events/s", _get("publish", "accepted_per_s")),
    ("... delivered/s to one subscriber (node 1)", _get("publish", "delivered_per_s")),
    ("... ack p50 / p99 ms", lambda r: _two(r, "publish", "ack_p50_ms", "ack_p99_ms")),
    ("... end to end p50 / p99 ms", lambda r: _two(r, "publish", "e2e_p50_ms", "e2e_p99_ms")),
    ("... CPU per event, us (nodes + backends)", _get("publish", "server_cpu_per_event_us")),
    ("approve (API on A) -> STATUS at a device on B, p50 / p90 / p99 ms", _pcts("latency", "approve_ms")),
    ("publish on B -> event on a stream at A, p50 / p90 / p99 ms", _pcts("latency", "publish_to_stream_ms")),
    ("takeover (reconnect to the next node), p50 / p90 / p99 ms", _pcts("latency", "takeover_ms")),
    ("latency samples that failed", _probe_failures),
    ("kill -9 of the leader -> another node leads, ms", _get("failover", "leader_failover_ms")),
    ("... devices held then (the fleet cut to what two survivors can hold)", _get("failover", "held_at_kill")),
    ("... devices the killed node held", _get("failover", "devices_on_killed_node")),
    ("... privileged again on a survivor", _get("failover", "back")),
    ("... all of them back after s", _get("failover", "all_back_s")),
    ("... half of them back after ms", _get("failover", "back_p50_ms")),
]


def _confirmed(row: Row) -> str | None:
    hold = row.get("hold") or {}
    if hold.get("store_confirmed") is None:
        return None
    after = hold.get("store_confirmed_after_s")
    return f"{cell(hold['store_confirmed'])}, " + (f"{cell(after)} s" if after is not None else "not all in 300 s")


def _retry(row: Row) -> str | None:
    hold = row.get("hold")
    if not hold:
        return None
    return f"{cell(hold['grow_failures'])} / {cell(hold['retried'] - hold['retried_back'])}"


def _two(row: Row, part: str, a: str, b: str) -> str | None:
    x, y = _get(part, a)(row), _get(part, b)(row)
    return None if x is None and y is None else f"{cell(x)} / {cell(y)}"


def render_rows(rows: list[Row]) -> str:
    """The figures as a Markdown table, one column per configuration."""
    storm = _storm_title(rows)
    lines: list[Row] = []
    for title, read in FIGURES:
        line: Row = {"figure": title.replace("STORM", storm)}
        for r in rows:
            line[r["configuration"]] = read(r)
        lines.append(line)
    columns = [("figure", "figure")] + [(r["configuration"], r["configuration"]) for r in rows]
    text = table(lines, columns)
    width = max(len(str(line["figure"])) for line in lines)
    out = []
    for printed in text.splitlines():  # the figure's name reads better from the left
        first, sep, rest = printed[2:].partition(" |")
        keep = not sep or printed.startswith("|-")
        out.append(printed if keep else f"| {first.strip().ljust(width)}{sep}{rest}")
    return "\n".join(out)


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    head = [
        "fleetsim bench cluster",
        f"  commit {m['commit']}{' (with uncommitted changes)' if m['uncommitted_changes'] else ''}; "
        f"{m['cores']} cores, {m['cpu_model']}; Python {m['python']}; loadavg at start {m['loadavg_at_start']}",
        f"  pinning: {result['pinning']['note']} (PostgreSQL not pinned)",
        f"  command: {m['command']}",
        "",
        render_rows(result["rows"]),
    ]
    for title in ("targets", "notes"):
        items = result.get(title) or []
        if items:
            head += ["", f"{title}:"] + [f"  - {item}" for item in items]
    return "\n".join(head)
