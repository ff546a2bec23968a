#!/usr/bin/env python3
"""bench/report.py - turn bench/run.sh's JSON lines into docs/BENCHMARKS.md,
or (--check) into a pass/fail verdict on the performance acceptance.

roomd's runs are "roomd" (members attached to the room port) and, when
present, "roomd-plain" (members on the control connection: --plain) and
"roomd-tls" (every connection over TLS: --tls). The TLS section compares
labels W-closed-tls (roomd and roomd-tls run in turn) and "handshakes"
(roombench --handshakes, plain and TLS). The cluster section compares
bench/cluster.sh's runs, labels W-closed-cl and W-rate-cl: "cluster" (one
Redis, three nodes, members spread over them) and "roomd" (one node, run
in turn). A workload bench/run.sh left out
(WORKLOADS) is left out of the report.

Each workload ran REPEAT times per server; the median run of each is the
figure (by deliveries/s for closed loop, by p99 for fixed rate)."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CLOSED = ["a-closed", "b-closed", "c-closed"]
RATE = ["a-rate", "b-rate"]
WORKLOAD = {
    "a": "1 room x 100 members, 10 senders",
    "b": "50 rooms x 20 members, 2 senders per room",
    "c": "1 room x 1000 members, 1 sender",
}
RSS_PER_MEMBER_MAX = 8192
THROUGHPUT_RATIO_MIN = 0.8
PLAIN = "roomd-plain"
PLAIN_RATIO_MIN = 0.7
PLAIN_CPU_RATIO_MAX = 1.5  # plain members' CPU per delivery over attached ones'
P99_RATIO_MAX = 1.25
DB_COST_MAX = 0.10
SCALE_SETUP_MAX = 10.0
TLS = "roomd-tls"
ALL_WORKLOADS = "a b c scale"
TOOL_BUSY = 0.9  # roombench's own CPU share beyond which it set the rate
TLS_CLOSED = ["a-closed-tls", "b-closed-tls"]
CLUSTER = "cluster"
CL = "-cl"  # the suffix run.sh gives bench/cluster.sh's labels
CLUSTER_LABELS = ["a-closed", "b-closed", "a-rate", "b-rate"]


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                runs.setdefault((r["label"], r["server"]), []).append(r)
    return runs


def median_run(rs, key):
    """The run whose key is the median (the lower middle for an even count)."""
    rs = sorted(rs, key=lambda r: r[key])
    return rs[(len(rs) - 1) // 2]


def cpu_us(r):
    """The server's CPU per delivery measured, in microseconds."""
    n = r["deliveries_per_s"] * r["seconds"]
    return r["daemon_cpu_s"] * 1e6 / n if n > 0 and r["daemon_cpu_s"] >= 0 else float("nan")


def has_plain(runs, w):
    return (w, PLAIN) in runs


def ran(runs, ws):
    """The workloads of ws that bench/run.sh ran (WORKLOADS)."""
    return [w for w in ws if (w, "limit") in runs]


def has_tls(runs, w):
    return (w, TLS) in runs and (w, "roomd") in runs


def clean(rs):
    return all(r["lost"] == 0 and r["duplicated"] == 0 and r["reordered"] == 0
               and r["misrouted"] == 0 for r in rs)


def checks(runs):
    """[(what, measured, bound, ok)] for every acceptance point."""
    out = []
    for w in ran(runs, CLOSED):
        lim = median_run(runs[(w, "limit")], "deliveries_per_s")
        rd = median_run(runs[(w, "roomd")], "deliveries_per_s")
        ratio = rd["deliveries_per_s"] / lim["deliveries_per_s"]
        out.append((f"{w}: roomd/limit deliveries/s", f"{ratio:.2f}",
                    f">= {THROUGHPUT_RATIO_MIN}", ratio >= THROUGHPUT_RATIO_MIN))
        out.append((f"{w}: roomd lost/duplicated/reordered", "0" if clean(runs[(w, "roomd")])
                    else "NOT 0", "0", clean(runs[(w, "roomd")])))
        if has_plain(runs, w):
            out.extend(plain_checks(runs, w, lim, rd))
    for w in ran(runs, RATE):
        lim = median_run(runs[(w, "limit")], "lat_p99_us")
        for srv in ("roomd", PLAIN) if has_plain(runs, w) else ("roomd",):
            rd = median_run(runs[(w, srv)], "lat_p99_us")
            ratio = rd["lat_p99_us"] / lim["lat_p99_us"]
            out.append((f"{w}: {srv}/limit p99 latency", f"{ratio:.2f}", f"<= {P99_RATIO_MAX}",
                        ratio <= P99_RATIO_MAX))
    if ("scale-members", "roomd") in runs:
        out.extend(scale_checks(runs))
    for w in CLOSED:
        if (w + "-db", "roomd-db") in runs:
            cost = db_cost(runs, w)
            out.append((f"{w}: throughput cost of persistence", f"{cost * 100:.1f} %",
                        f"< {DB_COST_MAX * 100:.0f} %", cost < DB_COST_MAX))
            out.append((f"{w}-db: roomd lost/duplicated/reordered",
                        "0" if clean(runs[(w + "-db", "roomd-db")]) else "NOT 0", "0",
                        clean(runs[(w + "-db", "roomd-db")])))
    out.extend(tls_checks(runs))
    out.extend(cluster_checks(runs))
    return out


def scale_checks(runs):
    out = []
    m = runs[("scale-members", "roomd")][0]
    out.append(("10,000 idle attached members: RSS per member",
                f"{m['daemon_rss_per_member_b']:.0f} B", f"<= {RSS_PER_MEMBER_MAX} B",
                0 <= m["daemon_rss_per_member_b"] <= RSS_PER_MEMBER_MAX))
    out.append(("10,000 members: messages flow", f"{m['silent_rooms']} silent rooms", "0",
                m["silent_rooms"] == 0 and clean([m])))
    s = runs[("scale-rooms", "roomd")][0]
    out.append(("1,000 rooms x 10 members: setup", f"{s['setup_s']:.2f} s",
                f"< {SCALE_SETUP_MAX:.0f} s", s["setup_s"] < SCALE_SETUP_MAX))
    out.append(("1,000 rooms: every room relays", f"{s['silent_rooms']} silent rooms", "0",
                s["silent_rooms"] == 0 and clean([s])))
    return out


def tls_checks(runs):
    """Over TLS, every delivery still arrives, and every new connection
    finishes its handshake and HELO. The cost has no bound: it is reported."""
    out = []
    for w in TLS_CLOSED:
        if (w, TLS) in runs:
            ok = clean(runs[(w, TLS)])
            out.append((f"{w[0]}-closed over TLS: lost/duplicated/reordered",
                        "0" if ok else "NOT 0", "0", ok))
    if ("handshakes", TLS) in runs:
        hs = runs[("handshakes", TLS)]
        bad = sum(r["unfinished"] for r in hs) + sum(r["handshakes"] == 0 for r in hs)
        out.append(("TLS handshakes: every connection answered", f"{bad} unfinished", "0",
                    bad == 0))
    return out


def has_cluster(runs, w):
    return (w + CL, CLUSTER) in runs and (w + CL, "roomd") in runs


def cluster_checks(runs):
    """Across three nodes, every delivery arrives once and in each room's
    one order. Throughput and latency have no bound: they are reported."""
    return [(f"{w} over 3 nodes: lost/duplicated/reordered",
             "0" if clean(runs[(w + CL, CLUSTER)]) else "NOT 0", "0", clean(runs[(w + CL, CLUSTER)]))
            for w in CLUSTER_LABELS if (w + CL, CLUSTER) in runs]


def plain_checks(runs, w, lim, rd):
    """Closed-loop workload w with plain members: against the limit server
    (lim) and against attached members (rd), each the median run."""
    pl = median_run(runs[(w, PLAIN)], "deliveries_per_s")
    ratio = pl["deliveries_per_s"] / lim["deliveries_per_s"]
    cpu = cpu_us(pl) / cpu_us(rd)
    return [(f"{w}: plain/limit deliveries/s", f"{ratio:.2f}", f">= {PLAIN_RATIO_MIN}",
             ratio >= PLAIN_RATIO_MIN),
            (f"{w}: plain/attached CPU per delivery", f"{cpu:.2f}", f"<= {PLAIN_CPU_RATIO_MAX}",
             cpu <= PLAIN_CPU_RATIO_MAX),
            (f"{w}: plain lost/duplicated/reordered", "0" if clean(runs[(w, PLAIN)]) else "NOT 0",
             "0", clean(runs[(w, PLAIN)]))]


def db_cost(runs, w):
    off = median_run(runs[(w, "roomd")], "deliveries_per_s")
    on = median_run(runs[(w + "-db", "roomd-db")], "deliveries_per_s")
    return 1 - on["deliveries_per_s"] / off["deliveries_per_s"]


def fmt_int(v):
    return f"{v:,.0f}"


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gcc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({model}), {mem_gib:.0f} GiB, Linux {platform.release()}, "
            f"{gcc.splitlines()[0] if gcc else 'cc'}")


def report(runs, args):
    p = print
    p("# Benchmarks")
    p()
    p("Produced by `bench/run.sh` (this file is its output; do not edit by hand). roomd is "
      "measured against `limit_server` (the raw-epoll floor: one thread, no parsing, no "
      "limits) with the same workloads, in the same run, driven by the same tool, "
      "`roombench`.")
    p()
    p(f"- Machine: {machine()}.")
    p(f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each figure is the median "
      f"of {args.repeat} runs per server of {args.duration:g} s measured (after 1 s of warm-up), "
      "servers restarted for every run, the limit server and roomd alternating."
      + (f" Workloads run: {args.workloads}." if args.workloads != ALL_WORKLOADS else ""))
    pin = ("the server on CPU 0 and roombench on CPU 1 (`taskset`), so neither steals the "
           "other's core and the runs repeat; roombench polls without sleeping (`--spin`) "
           "once traffic starts, so no server pays to wake it"
           if args.pin == "1" else "no CPU pinning")
    p(f"- Placement: {pin}.")
    p("- roomd: `bench/bench.ini` (shipped limits; the send queue bound at its default "
      "1 MiB, so slow-consumer protection is on; rate/burst and client counts raised for "
      "a load that all comes from 127.0.0.1). Members join on the control port and attach "
      "to the room port; in the rows marked plain they stay on the control connection, as "
      "lab-era CS4032 clients do, and send there. Payloads are 100 bytes; roomd's frame around them is 37 bytes "
      "(`CHAT:`, `CLIENT_NAME:`, `MESSAGE:`), the limit server's line 1 byte.")
    p()
    p("## Throughput, closed loop (at most 8 messages in flight per sender)")
    p()
    p("| workload | limit deliveries/s | roomd deliveries/s | ratio | roomd msgs/s | "
      "roomd p99 µs | lost/dup/reordered | roomd CPU s | CPU µs/delivery roomd (limit) |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in ran(runs, CLOSED):
        lim = median_run(runs[(w, "limit")], "deliveries_per_s")
        for srv in ("roomd", PLAIN) if has_plain(runs, w) else ("roomd",):
            rd = median_run(runs[(w, srv)], "deliveries_per_s")
            bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in runs[(w, srv)])
            kind = ", plain" if srv == PLAIN else ""
            p(f"| {w[0]}{kind}: {WORKLOAD[w[0]]} | {fmt_int(lim['deliveries_per_s'])} | "
              f"{fmt_int(rd['deliveries_per_s'])} | {rd['deliveries_per_s'] / lim['deliveries_per_s']:.2f} | "
              f"{fmt_int(rd['messages_per_s'])} | {rd['lat_p99_us']:,.0f} | {bad} | "
              f"{rd['daemon_cpu_s']:.1f} of {rd['seconds']:.0f} | "
              f"{cpu_us(rd):.3f} ({cpu_us(lim):.3f}) |")
    p()
    p("All runs of each workload (deliveries/s):")
    p()
    for w in ran(runs, CLOSED):
        lims = ", ".join(fmt_int(r["deliveries_per_s"]) for r in runs[(w, "limit")])
        rds = ", ".join(fmt_int(r["deliveries_per_s"]) for r in runs[(w, "roomd")])
        pls = ", ".join(fmt_int(r["deliveries_per_s"]) for r in runs.get((w, PLAIN), []))
        p(f"- {w}: limit {lims}; roomd {rds}" + (f"; roomd plain {pls}" if pls else ""))
    p()
    p("Run-to-run spread on this 2-CPU VM is 10-20 % for both servers, hence three runs and "
      "the median.")
    p()
    p("## Latency at a fixed rate")
    p()
    shapes, times = [], 0
    for w in ran(runs, RATE):
        times = len(runs[(w, "limit")])
        r = runs[(w, "limit")][0]
        per_room = f" in each of {r['rooms']} rooms" if r["rooms"] > 1 else ""
        offered = r["rate"] * r["senders"] * r["rooms"] * r["members"]
        shapes.append(f"{w[0]}: {r['senders']} senders x {r['rate']:,.0f} msg/s{per_room} "
                      f"({offered:,.0f} deliveries/s)")
    p("; ".join(shapes) + ". Latency is from the moment roombench queues a message to the "
      "moment a member reads it, over every delivery. Each server ran each workload "
      f"{times} times; the run with the median p99 is "
      "shown. At these rates the limit server keeps its queue short. b at 100 msg/s per "
      "sender (200,000 deliveries/s, mostly one write each: 50 rooms seldom have two "
      "messages in one pass) kept its core 97 % busy on this VM, and every server's p99 was "
      "then the length of its queue, 2.7-29.6 ms for the limit server's own "
      "(docs/PERFORMANCE.md, \"Latency at a fixed rate\").")
    p()
    p("| workload | server | p50 µs | p99 µs | p999 µs | max µs | deliveries/s | p99 ratio |")
    p("|---|---|---:|---:|---:|---:|---:|---:|")
    for w in ran(runs, RATE):
        lim = median_run(runs[(w, "limit")], "lat_p99_us")
        for srv in ("limit", "roomd", PLAIN) if has_plain(runs, w) else ("limit", "roomd"):
            r = median_run(runs[(w, srv)], "lat_p99_us")
            ratio = f"{r['lat_p99_us'] / lim['lat_p99_us']:.2f}" if srv != "limit" else ""
            name = "roomd, plain" if srv == PLAIN else srv
            p(f"| {w[0]} | {name} | {r['lat_p50_us']:,.0f} | {r['lat_p99_us']:,.0f} | "
              f"{r['lat_p999_us']:,.0f} | {r['lat_max_us']:,.0f} | "
              f"{fmt_int(r['deliveries_per_s'])} | {ratio} |")
    p()
    p("All runs (p99 µs):")
    p()
    for w in ran(runs, RATE):
        lims = ", ".join(f"{r['lat_p99_us']:,.0f}" for r in runs[(w, "limit")])
        rds = ", ".join(f"{r['lat_p99_us']:,.0f}" for r in runs[(w, "roomd")])
        pls = ", ".join(f"{r['lat_p99_us']:,.0f}" for r in runs.get((w, PLAIN), []))
        p(f"- {w}: limit {lims}; roomd {rds}" + (f"; roomd plain {pls}" if pls else ""))
    p()
    if ("scale-members", "roomd") in runs:
        scale_section(runs)
    if any((w + "-db", "roomd-db") in runs for w in CLOSED):
        db_section(runs)
    if any(has_tls(runs, w) for w in TLS_CLOSED) or ("handshakes", TLS) in runs:
        tls_section(runs)
    if any(has_cluster(runs, w) for w in CLUSTER_LABELS):
        cluster_section(runs)
    acceptance_and_commands(runs)


def scale_section(runs):
    p = print
    p("## Scale")
    p()
    s = runs[("scale-rooms", "roomd")][0]
    m = runs[("scale-members", "roomd")][0]
    p("| check | setup s | members | RSS empty KiB | RSS ready KiB | RSS per member | "
      "silent rooms | deliveries (lost) |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (("1,000 rooms x 10 members, 1 sender x 2 msg/s each", s),
                    ("10 rooms x 1,000 idle attached members, 1 sender x 5 msg/s each", m)):
        p(f"| {name} | {r['setup_s']:.2f} | {r['rooms'] * r['members']:,} | "
          f"{r['daemon_rss_base_kib']:,} | {r['daemon_rss_ready_kib']:,} | "
          f"{r['daemon_rss_per_member_b']:,.0f} B | {r['silent_rooms']} | "
          f"{r['deliveries']:,} ({r['lost']}) |")
    p()
    p("RSS per member is (RSS with every member joined and attached, before any message - "
      "RSS of the empty daemon) / members. Room threads have 256 KiB stacks, of which a "
      "few KiB are ever touched.")
    p()


def db_section(runs):
    p = print
    p("## Persistence (SQLite)")
    p()
    p("The closed-loop workloads again, with `database =` set: every relayed message is "
      "queued for the store's writer thread, which commits a batch every 100 ms or 1024 "
      "messages (`synchronous = FULL`, WAL) and trims each room to its history length. "
      "The writer runs on the daemon's core, like everything else of roomd.")
    p()
    p("| workload | off deliveries/s | on deliveries/s | cost | on msgs/s | on p99 µs |")
    p("|---|---:|---:|---:|---:|---:|")
    for w in CLOSED:
        if (w + "-db", "roomd-db") not in runs:
            continue
        off = median_run(runs[(w, "roomd")], "deliveries_per_s")
        on = median_run(runs[(w + "-db", "roomd-db")], "deliveries_per_s")
        p(f"| {w[0]} | {fmt_int(off['deliveries_per_s'])} | {fmt_int(on['deliveries_per_s'])} | "
          f"{db_cost(runs, w) * 100:.1f} % | {fmt_int(on['messages_per_s'])} | "
          f"{on['lat_p99_us']:,.0f} |")
    p()
    p("Runs on this VM vary by 10-20 % from one to the next (see the lists above), so a "
      "cost within that band is noise: workload c relays under 1,000 messages/s, which the "
      "store absorbs at almost no cost, and a negative cost is the same noise the other way.")
    p()
    p("A batch inserts only the messages that survive its own retention trim (each room's "
      "newest `history`), so the writer's work per batch is bounded by rooms x history, "
      "not by the message rate (docs/OPERATIONS.md).")
    p()


def tls_section(runs):
    p = print
    p("## TLS")
    p()
    p("Workloads a and b (closed loop) with every connection over TLS: roomd with "
      "`[tls] mode = required` and a self-signed EC P-256 certificate that bench/run.sh "
      "makes for the run; roombench `--tls` (OpenSSL 3, no certificate verification: a "
      "load generator) on the control port and the room ports. Each TLS run follows a "
      "plain run of the same workload (the plain figures here are those runs', not the "
      "throughput table's), so the ratio compares runs made side by side. Where the cost "
      "goes: docs/PERFORMANCE.md, \"TLS cost\".")
    p()
    p("| workload | plain deliveries/s | TLS deliveries/s | TLS/plain | "
      "CPU µs/delivery plain | CPU µs/delivery TLS | TLS p99 µs | TLS lost/dup/reordered |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in TLS_CLOSED:
        if not has_tls(runs, w):
            continue
        pl = median_run(runs[(w, "roomd")], "deliveries_per_s")
        tl = median_run(runs[(w, TLS)], "deliveries_per_s")
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in runs[(w, TLS)])
        p(f"| {w[0]}: {WORKLOAD[w[0]]} | {fmt_int(pl['deliveries_per_s'])} | "
          f"{fmt_int(tl['deliveries_per_s'])} | "
          f"{tl['deliveries_per_s'] / pl['deliveries_per_s']:.2f} | {cpu_us(pl):.3f} | "
          f"{cpu_us(tl):.3f} | {tl['lat_p99_us']:,.0f} | {bad} |")
    p()
    p("All runs (deliveries/s):")
    p()
    for w in TLS_CLOSED:
        if has_tls(runs, w):
            pls = ", ".join(fmt_int(r["deliveries_per_s"]) for r in runs[(w, "roomd")])
            tls = ", ".join(fmt_int(r["deliveries_per_s"]) for r in runs[(w, TLS)])
            p(f"- {w[0]}: plain {pls}; TLS {tls}")
    p()
    if ("handshakes", TLS) not in runs:
        return
    p("New connections (`roombench --handshakes`): 32 at a time, each connects, does a "
      "full TLS handshake (roombench offers no session to resume), sends one `HELO`, "
      "reads the reply and closes; the next starts at once. The plain row is the same "
      "without TLS, the baseline the handshake adds to.")
    p()
    p("| connections | per second | connect to HELO reply p50 µs | p99 µs | "
      "roomd CPU µs per connection | roombench CPU µs per connection |")
    p("|---|---:|---:|---:|---:|---:|")
    cpu, tool_bound = {}, []
    for srv, name in (("roomd", "plain TCP"), (TLS, "TLS handshake")):
        if ("handshakes", srv) not in runs:
            continue
        r = median_run(runs[("handshakes", srv)], "handshakes_per_s")
        cpu[srv] = r["daemon_cpu_us_per_handshake"]
        p(f"| {name} | {fmt_int(r['handshakes_per_s'])} | {r['lat_p50_us']:,.0f} | "
          f"{r['lat_p99_us']:,.0f} | {r['daemon_cpu_us_per_handshake']:,.1f} | "
          f"{r['bench_cpu_us_per_handshake']:,.1f} |")
        if r["bench_cpu_s"] >= TOOL_BUSY * r["seconds"]:
            tool_bound.append(name)
    p()
    if tool_bound:
        p(f"roombench's core was busy {TOOL_BUSY:.0%} of the time or more for: "
          f"{', '.join(tool_bound)}: there the rate is the tool's (a client's side of a "
          "handshake costs about what the server's does), and roomd's CPU per connection "
          "is the figure to go by.")
        p()
    for srv, name in (("roomd", "plain"), (TLS, "TLS")):
        if ("handshakes", srv) in runs:
            all_runs = ", ".join(fmt_int(r["handshakes_per_s"]) for r in runs[("handshakes", srv)])
            p(f"- {name}: {all_runs} per second")
    p()
    if len(cpu) == 2:
        p(f"A TLS handshake costs roomd about {cpu[TLS] - cpu['roomd']:,.0f} µs of CPU "
          "beyond a plain connection's (the medians' difference): roomd's core does "
          f"at most about {1e6 / cpu[TLS]:,.0f} TLS connections a second.")
        p()


def cluster_section(runs):
    p = print
    p("## Cluster (three nodes through Redis)")
    p()
    p("bench/cluster.sh, called by bench/run.sh: one redis-server (AOF on) and three roomd "
      "nodes with `[cluster]`, all on the servers' core, roombench on the other with "
      "`--servers` (member i of every room on node i mod 3, so every room spans the three "
      "nodes), members attached. Each cluster run is followed by the same run on one roomd "
      "(the single-node figures here are those runs'), so each ratio comes from runs made "
      "side by side. Every event of a room goes through its Redis stream before any node "
      "relays it (docs/CLUSTER.md). Redis commands per relayed message are Redis's own "
      "count (INFO commandstats) over the run, setup included, divided by the messages "
      "relayed.")
    p()
    p("| workload | one node deliveries/s | 3 nodes deliveries/s | cluster/single | "
      "Redis commands per message | 3 nodes p99 µs | lost/dup/reordered |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    for w in ("a-closed", "b-closed"):
        if not has_cluster(runs, w):
            continue
        one = median_run(runs[(w + CL, "roomd")], "deliveries_per_s")
        cl = median_run(runs[(w + CL, CLUSTER)], "deliveries_per_s")
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in runs[(w + CL, CLUSTER)])
        p(f"| {w[0]}: {WORKLOAD[w[0]]} | {fmt_int(one['deliveries_per_s'])} | "
          f"{fmt_int(cl['deliveries_per_s'])} | "
          f"{cl['deliveries_per_s'] / one['deliveries_per_s']:.2f} | "
          f"{cl.get('redis_calls_per_msg') or 0:.2f} | {cl['lat_p99_us']:,.0f} | {bad} |")
    p()
    p("Latency at a fixed rate (the closed-loop rows above measure throughput, where "
      "latency is queueing): what the Redis hop adds. Both workloads offer 5,000 "
      "messages/s in all (a: 10 senders x 500/s; b: 100 senders x 50/s, as the "
      "single-node b-rate above: at 10,000/s three nodes and Redis sharing one core fall "
      "behind, and a latency measured past capacity is only the length of the queue).")
    p()
    p("| workload | one node p50 µs | one node p99 µs | 3 nodes p50 µs | 3 nodes p99 µs | "
      "added p50 µs | added p99 µs | Redis commands per message |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in ("a-rate", "b-rate"):
        if not has_cluster(runs, w):
            continue
        one = median_run(runs[(w + CL, "roomd")], "lat_p99_us")
        cl = median_run(runs[(w + CL, CLUSTER)], "lat_p99_us")
        p(f"| {w} | {one['lat_p50_us']:,.0f} | {one['lat_p99_us']:,.0f} | "
          f"{cl['lat_p50_us']:,.0f} | {cl['lat_p99_us']:,.0f} | "
          f"{cl['lat_p50_us'] - one['lat_p50_us']:,.0f} | "
          f"{cl['lat_p99_us'] - one['lat_p99_us']:,.0f} | "
          f"{cl.get('redis_calls_per_msg') or 0:.2f} |")
    p()
    p("All runs:")
    p()
    for w in CLUSTER_LABELS:
        if has_cluster(runs, w):
            key = "deliveries_per_s" if "closed" in w else "lat_p99_us"
            what = "deliveries/s" if "closed" in w else "p99 µs"
            one = ", ".join(fmt_int(r[key]) for r in runs[(w + CL, "roomd")])
            cl = ", ".join(fmt_int(r[key]) for r in runs[(w + CL, CLUSTER)])
            p(f"- {w} ({what}): one node {one}; 3 nodes {cl}")
    cl = [r for w in CLUSTER_LABELS for r in runs.get((w + CL, CLUSTER), [])]
    if cl:
        cmds = {}
        for r in cl:
            for k, v in r.get("redis_commands", {}).items():
                cmds[k] = cmds.get(k, 0) + v
        top = sorted(cmds.items(), key=lambda kv: -kv[1])[:6]
        p()
        p("Redis commands over every cluster run, the most called: " +
          ", ".join(f"{k} {v:,}" for k, v in top) + ".")
    p()


def acceptance_and_commands(runs):
    p = print
    p("## Acceptance")
    p()
    p("| point | measured | bound | |")
    p("|---|---:|---:|---|")
    for what, got, bound, ok in checks(runs):
        p(f"| {what} | {got} | {bound} | {'pass' if ok else 'FAIL'} |")
    p()
    p("## Commands")
    p()
    p("```sh")
    p("bench/run.sh                        # everything above; rewrites this file")
    p("REPEAT=1 DURATION=3 bench/run.sh    # a quick look")
    p("TLS=0 WORKLOADS='a b' bench/run.sh  # some workloads, no TLS runs")
    p("# one workload by hand:")
    p("build/release/server/roomd -c bench/bench.ini &")
    p("build/release/bench/roombench -p 9700 -r 1 -m 100 -s 10 -w 8 -d 10 --pid $!")
    p("build/release/bench/roombench -p 9700 -r 1 -m 100 -s 10 -w 8 -d 10 --pid $! --plain")
    p("cc -O2 -o /tmp/limit_server ../shared/bench/limit_server.c && /tmp/limit_server 9800 &")
    p("build/release/bench/roombench -t limit -p 9800 -r 1 -m 100 -s 10 -w 8 -d 10 --pid $!")
    p("# over TLS: bench.ini plus [tls] mode = required, cert, key (bench/run.sh writes one)")
    p("build/release/server/roomd -c /tmp/bench-tls.ini &")
    p("build/release/bench/roombench -p 9700 --tls -r 1 -m 100 -s 10 -w 8 -d 10 --pid $!")
    p("build/release/bench/roombench -p 9700 --tls --handshakes -d 10 --pid $!")
    p("# three nodes through Redis (bench/run.sh calls it; CLUSTER=0 skips it):")
    p("REPEAT=1 DURATION=3 bench/cluster.sh")
    p("```")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--repeat", default="?")
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--pin", default="1")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--workloads", default=ALL_WORKLOADS, help="bench/run.sh's WORKLOADS")
    args = ap.parse_args()
    runs = load(args.results)
    if args.check:
        bad = 0
        for what, got, bound, ok in checks(runs):
            print(f"{'pass' if ok else 'FAIL'}  {what}: {got} (bound {bound})")
            bad += not ok
        sys.exit(1 if bad else 0)
    report(runs, args)


if __name__ == "__main__":
    main()
