"""Socket table parsing and counting on hand-written `/proc/net/tcp{,6}` text (little-endian hex)."""

from __future__ import annotations

import pickle
import re

import pytest

from workload.errors import TelemetryError
from workload.telemetry.socktable import (
    DEFAULT_CHUNK_CHARS,
    TIME_WAIT_LINGER_S,
    TIME_WAIT_SLACK_S,
    TIMER_TIME_WAIT,
    USER_HZ,
    Baseline,
    Endpoint,
    SocketCounts,
    count_sockets,
    decode_address,
    endpoints_from_urls,
    parse_table,
    parse_timer,
    read_socket_tables,
    socket_identities,
)

V4_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
)
V6_HEADER = (
    "  sl  local_address                         remote_address                        st tx_queue "
    "rx_queue tr tm->when retrnsmt   uid  timeout inode"
)
LISTEN_8080 = (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 "
    "0000000000000000 100 0 0 10 0"
)
# 127.0.0.1:45678 (B26E) -> 127.0.0.1:8080 (1F90), both ends of one ESTABLISHED connection.
EST_CLIENT = (
    "   1: 0100007F:B26E 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 51234 1 "
    "0000000000000000 20 4 30 10 -1"
)
EST_SERVER = (
    "   2: 0100007F:1F90 0100007F:B26E 01 00000000:00000000 00:00000000 00000000  1000        0 51235 1 "
    "0000000000000000 20 4 28 10 -1"
)
# TIME_WAIT rows: inode 0, timer 03.  Client closed first (45680 = B270); server closed first (B272).
TW_CLIENT = (
    "   3: 0100007F:B270 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
    "0000000000000000"
)
TW_SERVER = (
    "   4: 0100007F:1F90 0100007F:B272 06 00000000:00000000 03:000016F0 00000000     0        0 0 3 "
    "0000000000000000"
)
TW_OTHER_PORT = (  # 127.0.0.1:8081 (1F91): not a target
    "   5: 0100007F:B274 0100007F:1F91 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
    "0000000000000000"
)
TW_OTHER_IP = (  # 127.0.0.2:8080 (0200007F): same port, other address, not a target
    "   6: 0100007F:B276 0200007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
    "0000000000000000"
)
LOOP6 = "00000000000000000000000001000000"  # ::1
MAPPED = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1
EST_CLIENT_V6 = (  # [::1]:50000 (C350) -> [::1]:8080
    f"   0: {LOOP6}:C350 {LOOP6}:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 61234 1 "
    "0000000000000000 20 4 30 10 -1"
)
TW_CLIENT_MAPPED = (  # dual-stack socket: [::ffff:127.0.0.1]:50002 -> [::ffff:127.0.0.1]:8080
    f"   1: {MAPPED}:C352 {MAPPED}:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
    "0000000000000000"
)

V4_ROWS = [LISTEN_8080, EST_CLIENT, EST_SERVER, TW_CLIENT, TW_SERVER, TW_OTHER_PORT, TW_OTHER_IP]
V6_ROWS = [EST_CLIENT_V6, TW_CLIENT_MAPPED]
TARGET_V4 = Endpoint("127.0.0.1", 8080)
TARGET_V6 = Endpoint("::1", 8080)


def table(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def tables(v4: list[str] = V4_ROWS, v6: list[str] = V6_ROWS) -> dict[int, str]:
    return {4: table(V4_HEADER, v4), 6: table(V6_HEADER, v6)}


def test_endpoint_hex_forms_are_little_endian_words() -> None:
    assert TARGET_V4.table_tokens() == {4: "0100007F:1F90", 6: f"{MAPPED}:1F90"}
    assert TARGET_V6.table_tokens() == {6: f"{LOOP6}:1F90"}


def test_decode_address_round_trips() -> None:
    assert decode_address("0100007F:1F90") == TARGET_V4
    assert decode_address(f"{LOOP6}:1F90") == TARGET_V6
    assert decode_address(f"{MAPPED}:1F90") == TARGET_V4  # IPv4-mapped is normalised to IPv4
    for endpoint in (Endpoint("10.1.2.3", 443), Endpoint("fe80::1:2", 1), TARGET_V6):
        for token in endpoint.table_tokens().values():
            assert decode_address(token) == endpoint


def test_endpoint_parse_and_str() -> None:
    assert Endpoint.parse("127.0.0.1:8080") == TARGET_V4
    assert Endpoint.parse("[::1]:8080") == TARGET_V6
    assert Endpoint("::ffff:127.0.0.1", 8080) == TARGET_V4
    assert str(TARGET_V6) == "[::1]:8080" and str(TARGET_V4) == "127.0.0.1:8080"
    assert TARGET_V6.is_loopback and not Endpoint("192.0.2.1", 80).is_loopback
    for bad in ("127.0.0.1", "localhost:80", "[::1]:x", ":80"):
        with pytest.raises(TelemetryError):
            Endpoint.parse(bad)


def test_endpoints_from_urls() -> None:
    found = endpoints_from_urls(["http://localhost:8080/api", "https://127.0.0.1", "http://[::1]", "http://0.0.0.0:9"])
    assert found == (
        TARGET_V4, TARGET_V6, Endpoint("127.0.0.1", 443), Endpoint("::1", 80), Endpoint("127.0.0.1", 9)
    )
    assert endpoints_from_urls(["http://127.0.0.1:8080", "http://127.0.0.1:8080/x"]) == (TARGET_V4,)


def test_endpoints_from_urls_needs_a_resolver_for_names() -> None:
    with pytest.raises(TelemetryError, match="resolve="):
        endpoints_from_urls(["http://target.example:8080"])
    stub = lambda host, port: ["127.0.0.3"]  # noqa: E731  (no DNS in tests)
    assert endpoints_from_urls(["http://target.example:8080"], resolve=stub) == (Endpoint("127.0.0.3", 8080),)
    with pytest.raises(TelemetryError):
        endpoints_from_urls(["ftp://127.0.0.1"])  # no default port


def test_parse_table_decodes_rows() -> None:
    rows = list(parse_table(tables()[4], 4))
    assert len(rows) == len(V4_ROWS)
    assert (rows[0].local, rows[0].state, rows[0].inode) == (TARGET_V4, "LISTEN", 41234)
    client = Endpoint("127.0.0.1", 45678)
    assert (rows[1].local, rows[1].remote, rows[1].state) == (client, TARGET_V4, "ESTABLISHED")
    assert (rows[3].state, rows[3].inode) == ("TIME_WAIT", 0)
    v6 = list(parse_table(tables()[6], 6))
    assert [row.remote for row in v6] == [TARGET_V6, TARGET_V4]


def test_count_client_and_server_sides_ipv4() -> None:
    counts = count_sockets(tables(v6=[]), [TARGET_V4])
    assert counts == SocketCounts(tw_client=1, tw_server=1, est_client=1, est_server=1)


def test_other_port_and_other_ip_are_ignored() -> None:
    assert count_sockets(tables(v4=[TW_OTHER_PORT, TW_OTHER_IP], v6=[]), [TARGET_V4]) == SocketCounts()
    assert count_sockets(tables(v6=[]), [Endpoint("127.0.0.1", 8081)]) == SocketCounts(tw_client=1)


def test_ipv6_and_ipv4_mapped_rows() -> None:
    # The mapped row belongs to the IPv4 target; the ::1 row only to the IPv6 one.
    assert count_sockets(tables(v4=[]), [TARGET_V4]) == SocketCounts(tw_client=1)
    assert count_sockets(tables(v4=[]), [TARGET_V6]) == SocketCounts(est_client=1)
    both = endpoints_from_urls(["http://localhost:8080"])
    assert count_sockets(tables(), both) == SocketCounts(tw_client=2, tw_server=1, est_client=2, est_server=1)


def test_baseline_excludes_sockets_present_at_start() -> None:
    before = tables(v4=[LISTEN_8080, EST_CLIENT, EST_SERVER, TW_CLIENT], v6=[TW_CLIENT_MAPPED])
    baseline = socket_identities(before, [TARGET_V4])
    assert baseline == {
        "0100007F:B26E 0100007F:1F90 01", "0100007F:1F90 0100007F:B26E 01", "0100007F:B270 0100007F:1F90 06",
        f"{MAPPED}:C352 {MAPPED}:1F90 06",
    }
    assert count_sockets(tables(), [TARGET_V4], baseline) == SocketCounts(tw_server=1)


def test_baseline_socket_that_changes_state_counts_as_new() -> None:
    baseline = socket_identities(tables(v4=[EST_CLIENT], v6=[]), [TARGET_V4])
    now_time_wait = EST_CLIENT.replace(" 01 ", " 06 ", 1)
    counts = count_sockets(tables(v4=[now_time_wait], v6=[]), [TARGET_V4], baseline)
    assert counts == SocketCounts(tw_client=1)


def test_server_side_can_be_skipped() -> None:
    counts = count_sockets(tables(v6=[]), [TARGET_V4], server_side=False)
    assert counts == SocketCounts(tw_client=1, est_client=1)


def test_large_row_numbers_still_match() -> None:
    row = TW_CLIENT.replace("   3:", "12345:", 1)
    assert count_sockets(tables(v4=[row], v6=[]), [TARGET_V4]) == SocketCounts(tw_client=1)


def test_read_socket_tables_missing_files(tmp_path) -> None:
    v4 = tmp_path / "tcp"
    v4.write_text(table(V4_HEADER, [TW_CLIENT]))
    got = read_socket_tables({4: str(v4), 6: str(tmp_path / "tcp6")})
    assert got[6] == "" and "B270" in got[4]  # no IPv6 table: IPv6 disabled, not an error
    with pytest.raises(TelemetryError, match="Linux"):
        read_socket_tables({4: str(tmp_path / "nope")})


def test_tables_larger_than_one_scan_chunk() -> None:
    # ~3,000 rows (~450 KB) span two scan chunks: no row may be lost or counted twice at the seam.
    rows = [TW_CLIENT.replace("B270", f"{port:04X}", 1) for port in range(40000, 43000)]
    rows += [TW_SERVER.replace("B272", f"{port:04X}", 1) for port in range(40000, 40500)]
    big = tables(v4=rows, v6=[])
    assert len(big[4]) > DEFAULT_CHUNK_CHARS
    assert count_sockets(big, [TARGET_V4]) == SocketCounts(tw_client=3000, tw_server=500)
    calls: list[int] = []
    count_sockets(big, [TARGET_V4], pause=lambda: calls.append(1))
    assert len(calls) >= 4  # two chunks per side: the sampler's thread yields the GIL between them
    assert len(socket_identities(big, [TARGET_V4])) == 3500


# -- TIME_WAIT timers: a baseline identity taken over by a new socket ------------------------------
T0 = 1000.0  # a `time.monotonic` reading: when the baseline's tables were read


def left(row: str, seconds: float) -> str:
    """TIME_WAIT ``row`` with ``seconds`` left on its timer (``tr:tm->when``, in USER_HZ ticks)."""
    row, found = re.subn(r" 03:[0-9A-F]{8} ", f" 03:{round(seconds * USER_HZ):08X} ", row, count=1)
    assert found == 1
    return row


def test_parse_timer_and_the_timer_columns() -> None:
    assert parse_timer("03:00001770", hz=100) == (TIMER_TIME_WAIT, 60.0)
    assert parse_timer("03:00001770", hz=250) == (3, 24.0)
    assert parse_timer("00:00000000") == (0, 0.0)
    assert parse_timer("02:0001ADB0", hz=100) == (2, 1100.0)  # keepalive timer of an ESTABLISHED row
    assert parse_timer(f"03:{59 * USER_HZ:08X}") == (3, 59.0)  # default: this kernel's USER_HZ
    for bad in ("0300001770", "03:", "xx:00001770"):
        with pytest.raises(TelemetryError, match="tr:tm->when"):
            parse_timer(bad)
    rows = list(parse_table(tables(v6=[])[4], 4))
    assert [(row.state, row.timer) for row in rows[:4]] == [
        ("LISTEN", 0), ("ESTABLISHED", 0), ("ESTABLISHED", 0), ("TIME_WAIT", TIMER_TIME_WAIT)
    ]
    assert rows[3].timer_s == 0x1770 / USER_HZ and rows[4].timer_s == 0x16F0 / USER_HZ
    assert next(parse_table(table(V4_HEADER, [left(TW_CLIENT, 12.5)]), 4)).timer_s == 12.5


def test_baseline_records_time_wait_expiries() -> None:
    before = tables(v4=[EST_CLIENT, left(TW_CLIENT, 60), left(TW_SERVER, 30)], v6=[left(TW_CLIENT_MAPPED, 5)])
    baseline = socket_identities(before, [TARGET_V4], read_at=T0)
    assert isinstance(baseline, Baseline) and len(baseline) == 4
    assert baseline.expiries == {
        "0100007F:B270 0100007F:1F90 06": T0 + 60, "0100007F:1F90 0100007F:B272 06": T0 + 30,
        f"{MAPPED}:C352 {MAPPED}:1F90 06": T0 + 5,
    }  # no expiry for the ESTABLISHED row
    assert pickle.loads(pickle.dumps(baseline)).expiries == baseline.expiries
    assert Baseline(["a 06"], {"a 06": 1.0, "b 06": 2.0}).expiries == {"a 06": 1.0}  # only its own


def test_time_wait_taken_over_by_a_new_socket_counts() -> None:
    # tcp_tw_reuse (or SO_REUSEADDR) lets a new connection reuse a TIME_WAIT socket's port to the
    # same destination; once it closes, its TIME_WAIT row has the baseline row's identity.  Its
    # later expiry tells it apart.  Baseline at T0: client and server TIME_WAIT expiring T0 + 60.
    before = tables(v4=[EST_CLIENT, left(TW_CLIENT, 60), left(TW_SERVER, 60)], v6=[])
    baseline = socket_identities(before, [TARGET_V4], read_at=T0)

    def count(read_at: float, *rows: str) -> SocketCounts:
        return count_sockets(tables(v4=[EST_CLIENT, *rows], v6=[]), [TARGET_V4], baseline, read_at=read_at)

    assert count(T0 + 10, left(TW_CLIENT, 50), left(TW_SERVER, 50)) == SocketCounts()  # the same sockets
    jitter = TIME_WAIT_SLACK_S / 2  # rounding and read time: the same sockets, not new ones
    assert count(T0 + 10, left(TW_CLIENT, 50 + jitter), left(TW_SERVER, 50 + jitter)) == SocketCounts()
    # Taken over 5 s after the baseline, then closed: 60 s left at T0 + 10 means expiry T0 + 70.
    assert count(T0 + 10, left(TW_CLIENT, 60), left(TW_SERVER, 50)) == SocketCounts(tw_client=1)
    assert count(T0 + 10, left(TW_CLIENT, 50), left(TW_SERVER, 59)) == SocketCounts(tw_server=1)
    assert count(T0 + 61, left(TW_CLIENT, 59), left(TW_SERVER, 59)) == SocketCounts(tw_client=1, tw_server=1)
    # Expired (0 left) but not destroyed yet: the kernel's timer wheel is late by seconds.
    assert count(T0 + 63, left(TW_CLIENT, 0), left(TW_SERVER, 0)) == SocketCounts()
    # Past every baseline expiry plus the linger: a baseline TIME_WAIT identity is a new socket.
    assert count(T0 + 60 + TIME_WAIT_LINGER_S + 1, left(TW_CLIENT, 0), TW_SERVER) == SocketCounts(1, 1)
    # ESTABLISHED rows have no such timer: a baseline one stays left out, whatever the time.
    assert count(T0 + 500) == SocketCounts()
    # A plain set of identities (no expiries) keeps the old behaviour.
    plain = count_sockets(tables(v4=[left(TW_CLIENT, 60)], v6=[]), [TARGET_V4], frozenset(baseline), read_at=T0 + 10)
    assert plain == SocketCounts()


def test_renewed_time_wait_ipv6_and_odd_timers() -> None:
    mapped = left(TW_CLIENT_MAPPED, 60)
    baseline = socket_identities(tables(v4=[], v6=[EST_CLIENT_V6, mapped]), endpoints_from_urls(
        ["http://localhost:8080"]), read_at=T0)
    both = endpoints_from_urls(["http://localhost:8080"])
    # A 9-digit keepalive timer on the ESTABLISHED row takes the slow decoding path: same answer.
    est = EST_CLIENT_V6.replace(" 00:00000000 ", " 02:1FFFFFFFF ", 1)
    assert count_sockets(tables(v4=[], v6=[est, left(mapped, 49)]), both, baseline, read_at=T0 + 11) == SocketCounts()
    assert count_sockets(tables(v4=[], v6=[est, left(mapped, 60)]), both, baseline,
                         read_at=T0 + 11) == SocketCounts(tw_client=1)


def test_renewed_time_wait_across_scan_chunks() -> None:
    # 3,000 baseline TIME_WAIT rows over two scan chunks; later every other one is a new socket.
    ports = range(40000, 43000)
    rows = [TW_CLIENT.replace("B270", f"{port:04X}", 1) for port in ports]
    baseline = socket_identities(tables(v4=rows, v6=[]), [TARGET_V4], read_at=T0)
    assert len(baseline.expiries) == 3000
    later = [left(row, 60 if i % 2 else 40) for i, row in enumerate(rows)]
    big = tables(v4=[EST_CLIENT, *later], v6=[])
    assert len(big[4]) > DEFAULT_CHUNK_CHARS
    assert count_sockets(big, [TARGET_V4], baseline, read_at=T0 + 20) == SocketCounts(tw_client=1500, est_client=1)
    calls: list[int] = []
    count_sockets(big, [TARGET_V4], baseline, read_at=T0 + 20, pause=lambda: calls.append(1))
    assert len(calls) >= 4  # the timed scan yields between chunks too
