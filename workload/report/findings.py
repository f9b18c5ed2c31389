"""Findings: plain-language statements computed from the policy summary rows.

Each rule looks at the figures of `workload.report.summary` rows and returns a sentence only
when the numbers it needs are present: a finding is never guessed, and a figure that was not
observable is said to be so rather than printed as 0.  Counts use thousands separators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workload.report.numbers import amount, count, percent

Row = dict[str, Any]

# Throughputs within this ratio are "about the same".
DEFAULT_SAME_RATIO = 1.1
# Connections reused at least this many times on average get a reuse finding.
DEFAULT_REUSE_MIN = 2.0
# An open run's mean response time this many times a closed run's is coordinated omission.
DEFAULT_OMISSION_RATIO = 2.0
# Port-range shares below this are not worth a finding.
DEFAULT_PORT_SHARE_MIN = 0.01


def plural(n: float, word: str) -> str:
    return f"{count(n)} {word}{'' if n == 1 else 's'}"


def throughput(policies: list[Row]) -> str | None:
    """'shared: 38× the throughput of fresh' (highest against lowest requests/s)."""
    rated = [p for p in policies if p["rps"] is not None]
    if len(rated) < 2:
        return None
    best = max(rated, key=lambda p: p["rps"])
    worst = min(rated, key=lambda p: p["rps"])
    if worst["rps"] <= 0:
        return f"{worst['label']} completed no requests per second; {best['label']} did {amount(best['rps'])}"
    ratio = best["rps"] / worst["rps"]
    if ratio < DEFAULT_SAME_RATIO:
        return (f"{best['label']} and {worst['label']} had about the same throughput "
                f"({amount(best['rps'])} vs {amount(worst['rps'])} requests/s)")
    return f"{best['label']}: {amount(ratio)}× the throughput of {worst['label']}"


def engines(policies: list[Row]) -> list[str]:
    """'fast: 4.8× the throughput of requests at the same policy (shared-fast vs shared)': runs of
    one policy (same settings digest) on different engines, the fastest against each other."""
    found: list[str] = []
    groups: dict[str, list[Row]] = {}
    for p in policies:
        if p.get("policy_digest") and p.get("rps") is not None:
            groups.setdefault(p["policy_digest"], []).append(p)
    for group in groups.values():
        if len({p["engine"] for p in group}) < 2:
            continue
        best = max(group, key=lambda p: p["rps"])
        for other in group:
            if other["engine"] != best["engine"]:
                found.append(_engine_ratio(best, other))
    return found


def _engine_ratio(best: Row, other: Row) -> str:
    pair = f"({best['label']} vs {other['label']})"
    if other["rps"] <= 0:
        return f"{other['engine']} completed no requests per second at the same policy as {best['engine']} {pair}"
    ratio = best["rps"] / other["rps"]
    if ratio < DEFAULT_SAME_RATIO:
        return f"{best['engine']} and {other['engine']} had about the same throughput at the same policy {pair}"
    return f"{best['engine']}: {amount(ratio)}× the throughput of {other['engine']} at the same policy {pair}"


def time_wait_sides(policies: list[Row]) -> str | None:
    """'fresh left 2,310 TIME_WAIT sockets on the client; close left 2,298 on the server'."""
    clauses: list[str] = []
    for p in policies:
        side = {"client TIME_WAIT": "client", "server TIME_WAIT": "server"}.get(p["ended_by"])
        peak = p[f"time_wait_{side}_peak"] if side else None
        if peak is None:
            continue
        what = plural(peak, "TIME_WAIT socket") if not clauses else count(peak)
        clauses.append(f"{p['label']} left {what} on the {side}")
    return "; ".join(clauses) or None


def port_share(p: Row) -> str | None:
    """Client TIME_WAIT holds ephemeral ports: the forecast share of the range at this rate."""
    ports = p["ports"] or {}
    share, held, size = ports.get("forecast_share"), ports.get("forecast_time_wait"), ports.get("size")
    if p["ended_by"] != "client TIME_WAIT" or share is None or share < DEFAULT_PORT_SHARE_MIN:
        return None
    if share >= 1 and held is not None and size is not None:
        return (f"at this rate {p['label']} would need {count(held)} ports in TIME_WAIT, more than "
                f"the {count(size)}-port ephemeral range: new connections would fail")
    return (f"at this rate {p['label']} would hold {percent(min(share, 1))} "
            "of the ephemeral port range in TIME_WAIT")


def reset(p: Row) -> str | None:
    """'close: connections ended with a reset (no TIME_WAIT on either side)'."""
    if p["ended_by"] != "reset":
        return None
    client, server = p["time_wait_client_peak"], p["time_wait_server_peak"]
    if p["server_side_observable"] is False and client == 0:
        return f"{p['label']}: connections ended with a reset (no TIME_WAIT on the client)"
    if client == 0 and server == 0:
        return f"{p['label']}: connections ended with a reset (no TIME_WAIT on either side)"
    return f"{p['label']}: most connections ended with a reset"


def reuse(p: Row) -> str | None:
    """'shared reused each connection for 412 requests on average'."""
    per = p["requests_per_connection"]
    if per is None or per < DEFAULT_REUSE_MIN:
        return None
    return f"{p['label']} reused each connection for {amount(per)} requests on average"


def pool_discards(p: Row) -> str | None:
    """'shared discarded 35 connections because the pool was full (raise pool_maxsize)'."""
    if not p["pool_discards"]:
        return None
    return (f"{p['label']} discarded {plural(p['pool_discards'], 'connection')} "
            "because the pool was full (raise pool_maxsize)")


def server_agreement(policies: list[Row]) -> list[str]:
    """Client-side connection counts against the demo target's own accepted counts: one
    finding for all policies that agree, one per policy that does not."""
    agree, differ = [], []
    for p in policies:
        accepted = (p["server"] or {}).get("connections_accepted")
        opened = p["connections_opened"]
        if accepted is None or opened is None:
            continue
        if accepted == opened:
            agree.append(p["label"])
            continue
        gap = accepted - opened
        differ.append(f"{p['label']}: the client opened {plural(opened, 'connection')} but the server "
                      f"accepted {count(accepted)} ({count(abs(gap))} {'more' if gap > 0 else 'fewer'})")
    if agree:
        differ.insert(0, f"{', '.join(agree)}: the server accepted as many connections as the client opened")
    return differ


def tls_resumed(p: Row) -> str | None:
    """'close-resume resumed 97% of its TLS handshakes (388 of 400)'; or that the target resumed none."""
    resumed, total = p.get("tls_resumed"), p.get("tls_handshakes")
    if not p.get("tls_resumption") or resumed is None or not total:
        return None
    if resumed == 0:
        return (f"{p['label']} offered TLS sessions but the target resumed none of its {plural(total, 'handshake')} "
                "(no session cache or tickets on the server?)")
    return f"{p['label']} resumed {percent(resumed / total)} of its TLS handshakes ({count(resumed)} of {count(total)})"


def resumption_gain(policies: list[Row]) -> list[str]:
    """'close-resume with TLS resumption: 1.6× the throughput of close with full handshakes', per
    resuming policy against a policy of the same type whose handshakes were all full."""
    full = [p for p in policies if p.get("tls_handshakes") and p.get("tls_resumed") == 0 and p["rps"]]
    found = []
    for p in policies:
        match = next((f for f in full if f["policy_type"] == p["policy_type"] and f is not p), None)
        if match is None or not p.get("tls_resumed") or p["rps"] is None:
            continue
        ratio = p["rps"] / match["rps"]
        what = (f"{amount(ratio)}× the throughput of" if ratio >= DEFAULT_SAME_RATIO or ratio <= 1 / DEFAULT_SAME_RATIO
                else "about the same throughput as")
        found.append(f"{p['label']} with TLS resumption: {what} {match['label']} with full handshakes "
                     f"({amount(p['rps'])} vs {amount(match['rps'])} requests/s)")
    return found


def failures(p: Row) -> str | None:
    """'close: 35 failures (30 reset, 5 timeout)'."""
    if not p["failures"]:
        return None
    causes = ", ".join(f"{count(n)} {cause}" for cause, n in p["failures_by_cause"].items())
    return f"{p['label']}: {plural(p['failures'], 'failure')} ({causes or 'cause not recorded'})"


def unobservable(policies: list[Row]) -> str | None:
    """Say that server TIME_WAIT was not observable (one finding for all such policies)
    instead of printing 0."""
    remote = [p["label"] for p in policies if p["server_side_observable"] is False]
    if not remote:
        return None
    return (f"{', '.join(remote)}: the target is remote, so server-side TIME_WAIT is not observable "
            "(only the client side is reported)")


def generator_bound(policies: list[Row]) -> str | None:
    """'shared, close: the load generator, not the target, was the bottleneck (CPU 97–99% of one
    core ...)': one finding for every saturated run, since they usually share the cause."""
    bound = [p for p in policies if (p.get("generator") or {}).get("saturated")]
    if not bound:
        return None
    if len(bound) == 1:
        because = "; ".join(bound[0]["generator"].get("saturated_because") or []) or "saturated"
    else:
        because = _bound_causes([p["generator"] for p in bound])
    whose = "its" if len(bound) == 1 else "their"
    return (f"{', '.join(p['label'] for p in bound)}: the load generator, not the target, was the bottleneck "
            f"({because}): {whose} latency figures include the generator's own delay (flagged)")


def _bound_causes(generators: list[dict[str, Any]]) -> str:
    """The saturation causes of several runs, each as the range of its figure."""
    def span(values: list[float]) -> str:
        low, high = min(values), max(values)
        return amount(low) if amount(low) == amount(high) else f"{amount(low)}–{amount(high)}"

    def by(cause: str, key: str) -> list[float]:
        return [float(g[key]) for g in generators
                if g.get(key) is not None and any(r.startswith(cause) for r in g.get("saturated_because") or [])]

    causes = []
    if cpus := by("CPU", "cpu_percent"):
        causes.append(f"CPU {span(cpus)}% of one core")
    if lags := by("event-loop", "loop_lag_p99_ms"):
        causes.append(f"event-loop lag p99 {span(lags)} ms")
    return "; ".join(causes) or "saturated"


def omission(policies: list[Row]) -> str | None:
    """An open run next to a closed one: how much lower the closed run's latency is, and why."""
    opened = next((p for p in policies if p.get("model") == "open" and p.get("response_mean_ms")), None)
    closed = next((p for p in policies if p.get("model") == "closed" and p.get("avg_ms")), None)
    if opened is None or closed is None:
        return None
    ratio = opened["response_mean_ms"] / closed["avg_ms"]
    if ratio < DEFAULT_OMISSION_RATIO:
        return None
    return (f"{opened['label']} (open model): response time from the intended start mean "
            f"{amount(opened['response_mean_ms'])} ms, p90 {amount(opened['response_p90_ms'] or 0)} ms, "
            f"{amount(ratio)}× the mean of {closed['label']} (closed model: mean {amount(closed['avg_ms'])} ms, "
            f"p95 {amount(closed['p95_ms'] or 0)} ms): closed users stop sending while the target is slow, so "
            "their latency leaves the wait out (coordinated omission); the open figures are the honest ones")


def interrupted(p: Row) -> str | None:
    if p["complete"]:
        return None
    return (f"{p['label']}: the run did not complete; "
            "its figures cover only what was measured before it stopped")


def http2(p: Row) -> str | None:
    """'shared-h2: 1 HTTP/2 connection for 10 users (842 streams on each)': multiplexing at a glance,
    and a warning when a policy asked for HTTP/2 and the server answered HTTP/1.1."""
    if not str(p.get("engine") or "").endswith(" h2"):
        return None
    fallback = (p.get("protocols") or {}).get("http/1.1")
    if fallback:
        return (f"{p['label']} asked for HTTP/2 but {plural(fallback, 'connection')} spoke HTTP/1.1 "
                "(the server did not offer h2 by ALPN)")
    h2 = p.get("http2_connections")
    if not h2:
        return None
    users = f" for {plural(p['users'], 'user')}" if p.get("users") else ""
    streams = p.get("streams_per_connection")
    each = f" ({amount(streams)} streams on each)" if streams else ""
    return f"{p['label']}: {plural(h2, 'HTTP/2 connection')}{users}{each}"


Rule = Callable[[Row], str | None]
CONNECTION_RULES: tuple[Rule, ...] = (http2, port_share, reset, reuse, pool_discards, tls_resumed)


def build_findings(policies: list[Row], scenarios: list[str]) -> list[str]:
    """All findings, grouped by topic (each topic in policy order)."""
    found: list[str | None] = []
    if len(scenarios) > 1:
        found.append(f"the runs come from different scenarios ({', '.join(scenarios)}): "
                     "their figures are not directly comparable")
    found += [throughput(policies), *engines(policies), time_wait_sides(policies)]
    found += [rule(p) for rule in CONNECTION_RULES for p in policies]
    found += resumption_gain(policies)
    found += server_agreement(policies)
    found += [failures(p) for p in policies]
    found.append(unobservable(policies))
    found.append(generator_bound(policies))
    found.append(omission(policies))
    found += [interrupted(p) for p in policies]
    return [f for f in found if f]
