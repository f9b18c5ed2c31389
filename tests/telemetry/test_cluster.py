"""workload.telemetry.cluster: what the merged `sockets` section says about how it was read."""

from __future__ import annotations

from typing import Any

from workload.telemetry import cluster


def _report(host: str, netns: str, source: str | None, fallback: str | None = None) -> dict[str, Any]:
    sockets: dict[str, Any] = {"source": source, "server_side_observable": False,
                               "time_wait_client": {"peak": 4, "end": 3}}
    if fallback:
        sockets["source_fallback"] = fallback
    return {"worker": f"{host}{netns}", "host": host, "netns": netns, "sockets": sockets}


def test_the_merged_section_names_the_workers_table_source():
    same = cluster.merge_sockets([_report("a", "1", "netlink"), _report("a", "2", "netlink")])
    assert same["source"] == "netlink" and "source_fallback" not in same
    assert same["hosts"] == 2 and same["time_wait_client"] == {"peak": 8, "end": 6}
    mixed = cluster.merge_sockets([_report("a", "1", "netlink"), _report("b", "1", "proc", "no netlink here")])
    assert mixed["source"] == "netlink+proc" and mixed["source_fallback"] == "no netlink here"
    assert cluster.merge_sockets([_report("a", "1", None)])["source"] is None
