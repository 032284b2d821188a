"""The issue's targets, checked against a run's rows (a line each: met, MISSED or not measured)."""

from __future__ import annotations

from typing import Any

from .report import target_line

CPU_PER_CONN_US = 300.0
HOLD_DEVICES = 19_000
RSS_PER_CONN_KIB = 8.0  # issue 17 (issue 11 asked for 10)
STORM_DEVICES = 10_000
STORM_SECONDS = 5.0
EVENTS_PER_S = 30_000.0
OTA_MB_PER_S = 1000.0  # 1 GB/s, in MB of 10^6 bytes
MOSQUITTO_RATE_SHARE = 0.5
AMQTT_RATE_FACTOR = 5.0


def _best(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return max(values) if values else None


def check(scenario: str, result: dict[str, Any]) -> list[str]:
    rows: list[dict[str, Any]] = result.get("rows") or []
    out: list[str] = []
    if scenario == "connect":
        for r in rows:
            out.append(target_line(f"server CPU per authenticated connection, {r['devices']} {r['mode']}",
                                   r.get("server_cpu_per_conn_us"), CPU_PER_CONN_US, "us", False))  # fmt: skip
        storms = [r for r in rows if r["mode"] == "storm" and r["devices"] >= STORM_DEVICES]
        for r in storms:
            seconds = r["last_privileged_s"] if not r["failures"] else None
            line = target_line(f"{r['devices']} at once all privileged", seconds, STORM_SECONDS, "s", False)
            out.append(line + (f" ({r['failures']} failures)" if r["failures"] else ""))
        if not storms:
            out.append(target_line(f"{STORM_DEVICES} at once all privileged", None, STORM_SECONDS, "s", False))
    elif scenario == "hold":
        big = [r for r in rows if r["devices"] >= HOLD_DEVICES]
        for r in big:
            out.append(target_line(f"RSS per connection at {r['devices']} devices", r["rss_per_conn_kib"],
                                   RSS_PER_CONN_KIB, "KiB", False))  # fmt: skip
        if not big:
            out.append(target_line(f"RSS per connection at {HOLD_DEVICES}", None, RSS_PER_CONN_KIB, "KiB", False))
    elif scenario == "publish":
        ends = [min(r["accepted_per_s"] or 0, r["delivered_per_s"] or 0) for r in rows]
        out.append(target_line("acked events/s end to end (accepted and delivered)", max(ends) if ends else None,
                               EVENTS_PER_S, "events/s", True))  # fmt: skip
    elif scenario == "ota":
        out.append(target_line("OTA aggregate", _best(rows, "aggregate_mb_per_s"), OTA_MB_PER_S, "MB/s", True))
    elif scenario == "peers":
        by = {r["server"]: r for r in rows}
        ours, mosq, amqtt = by.get("fleetgate"), by.get("mosquitto"), by.get("amqtt")
        if ours and mosq:
            out.append(
                target_line(
                    "Fleetgate CPU per connection vs mosquitto's (TLS mutual auth)",
                    ours.get("cpu_per_conn_us"),
                    mosq.get("cpu_per_conn_us") or 0,
                    "us",
                    False,
                )
            )
            m_rate = mosq.get("messages_per_s")
            out.append(target_line("Fleetgate acked msgs/s vs half of mosquitto's QoS 1", ours.get("messages_per_s"),
                                   (m_rate or 0) * MOSQUITTO_RATE_SHARE, "msgs/s", True))  # fmt: skip
        persist = by.get("mosquitto-persist")
        if ours and persist:
            out.append(target_line("Fleetgate CPU per acked msg vs mosquitto's with persistence on",
                                   ours.get("cpu_per_message_us"), persist.get("cpu_per_message_us") or 0, "us",
                                   False))  # fmt: skip
        if ours and amqtt:
            a_rate = amqtt.get("messages_per_s")
            out.append(target_line("Fleetgate acked msgs/s vs 5x amqtt's", ours.get("messages_per_s"),
                                   (a_rate or 0) * AMQTT_RATE_FACTOR, "msgs/s", True))  # fmt: skip
    return out
