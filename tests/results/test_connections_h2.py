"""run.json `connections`: the protocol counters (engine httpx) typed, and summed over workers."""

from __future__ import annotations

from workload.engine.recorder import _merge_connections
from workload.results.run_sections import Connections


def test_protocol_counters_are_typed_in_the_connections_section():
    section = Connections.model_validate({"tcp_connects": 3, "protocols": {"h2": 1, "http/1.1": 2},
                                          "http2_connections": 1, "http2_streams": 40,
                                          "streams_per_connection": 40.0, "pool_waits": 0})
    assert (section.protocols, section.http2_streams, section.streams_per_connection) == (
        {"h2": 1, "http/1.1": 2}, 40, 40.0)


def test_a_master_sums_the_workers_protocols_and_streams():
    local = {"tcp_connects": 0, "protocols": {}, "http2_streams": 0}
    workers = [{"connections": {"tcp_connects": 1, "protocols": {"h2": 1}, "http2_streams": 30}},
               {"connections": {"tcp_connects": 3, "protocols": {"h2": 1, "http/1.1": 2}, "http2_streams": 10}},
               {"connections": {"tcp_connects": 0}}]  # engine requests: no protocol counters
    merged = _merge_connections(local, workers)
    assert merged["tcp_connects"] == 4
    assert merged["protocols"] == {"h2": 2, "http/1.1": 2}
    assert (merged["http2_connections"], merged["http2_streams"], merged["streams_per_connection"]) == (2, 40, 20.0)
