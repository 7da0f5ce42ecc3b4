#!/usr/bin/env python3
"""Benchmark of one `uniqwatch check` pass on a 100 000-document collection.

Prints five figures, and writes the same text to bench/results-checks.txt:

1. Cost to the database, from the server's own profiler and query plans: every
   command one pass sends (read back from `system.profile` at level 2), each
   explained again (queryPlanner verbosity) to count its COLLSCAN and index
   stages; the same for the seed's hand-run queries. Expected: one COLLSCAN per
   target without the unique index, none with it.
2. Wall time, alternating runs: a whole `uniqwatch check` process against the
   seed's aggregation run from pymongo (cursor drained), on the same server.
3. Peak RSS of the daemon over its start-up pass (`VmHWM`), and of one
   `uniqwatch check` process (`/usr/bin/time -v`).
4. `/metrics` latency under concurrent load, with wrk.
5. The semantic pass of `[target.canonical]` (bench/bench_semantic.py): its
   collection scans, its wall time against the operator's aggregation (both
   must find the same semantic duplicates), and the daemon's peak RSS at two
   collection sizes.

It is a report, not a test: nothing asserts a timing, and it exits 0 unless a
step failed to run. Called by scripts/bench-checks.sh, which installs and builds
what it needs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pymongo import MongoClient

import bench_semantic

ROOT = Path(__file__).resolve().parent.parent
KEY = "participantsKey"
# The seed's hand-run check (see issue 2): the $group that finds duplicated
# keys, and a second query for documents without a usable key.
SEED_GROUP = [{"$group": {"_id": f"${KEY}", "count": {"$sum": 1}}}, {"$match": {"count": {"$gt": 1}}}]
SEED_MISSING = {"$or": [{KEY: {"$exists": False}}, {KEY: None}, {KEY: ""}]}
# Commands the profiler records that have no query plan: collection metadata.
CATALOG_COMMANDS = {"listIndexes", "listCollections", "collStats", "dbStats"}
# Profiler entries that continue (or are) no query of their own; mongod
# records getMore and killCursors, SecantusDB does not.
CONTINUATIONS = {"getMore", "killCursors", "profile"}
# Fields of a recorded command that `explain` does not need (or rejects).
NOT_EXPLAINED = {"maxTimeMS", "comment", "readConcern", "lsid", "txnNumber", "$readPreference", "$db",
                 "$clusterTime", "apiVersion", "apiStrict", "apiDeprecationErrors", "writeConcern"}

out_lines: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    out_lines.append(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, cond, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {limit:.0f}s waiting for {what}")


def config_toml(uri: str, db: str, listen: str, state: Path) -> str:
    # The schedule fires once a year: the daemon runs the target once at
    # start-up, which is the pass being measured. The state dir is the
    # benchmark's own, never the machine's default.
    return f"""[mongodb]
uri = "{uri}"
query_timeout = "10m"

[web]
listen = "{listen}"

[state]
dir = "{state}"

[[target]]
name = "chats"
database = "{db}"
collection = "chats"
key = "{KEY}"
sparse = true
schedule = "0 0 0 1 1 *"
"""


# ---------------------------------------------------------------- plans


def winning_plans(explain: dict) -> list:
    """The winning plans of an explain answer: one per `$cursor` stage of an
    aggregation, else the top-level one (an aggregation's top-level
    `queryPlanner` repeats its first `$cursor`, so it is not counted twice)."""
    if isinstance(explain.get("stages"), list):
        plans = []
        for stage in explain["stages"]:
            cursor = stage.get("$cursor") if isinstance(stage, dict) else None
            if isinstance(cursor, dict):
                plans.append(cursor.get("queryPlanner", {}).get("winningPlan", {}))
        return plans
    return [explain.get("queryPlanner", {}).get("winningPlan", {})]


def stages_of(node, found: list[str]) -> list[str]:
    """Every `stage` name under a winning plan, recursively."""
    if isinstance(node, dict):
        if isinstance(node.get("stage"), str):
            found.append(node["stage"])
        for k, v in node.items():
            if k not in ("rejectedPlans", "slotBasedPlan"):
                stages_of(v, found)
    elif isinstance(node, list):
        for v in node:
            stages_of(v, found)
    return found


def summarize(command: dict) -> str:
    name = next(iter(command))
    parts = [f"{name}"]
    for field in ("query", "filter", "pipeline", "hint"):
        if field in command:
            text = repr(command[field])
            parts.append(f"{field}={text if len(text) <= 90 else text[:87] + '...'}")
    return " ".join(parts)


def classify(client: MongoClient, db: str, command: dict) -> dict:
    """Plan of one recorded command: its stages, and what it costs."""
    name = next(iter(command))
    row = {"command": summarize(command), "stages": [], "kind": "other", "note": ""}
    if name in CATALOG_COMMANDS:
        row["kind"] = "catalog"
        row["note"] = "catalog read, no query plan"
        return row
    pipeline = command.get("pipeline") if name == "aggregate" else None
    if pipeline and isinstance(pipeline[0], dict) and "$indexStats" in pipeline[0]:
        # Index metadata (build state), no documents read; the test server
        # explains it as a COLLSCAN, mongod as an $indexStats stage.
        row["kind"] = "catalog"
        row["note"] = "$indexStats: index metadata, no query plan"
        return row
    if name == "explain" and isinstance(command.get("explain"), dict):
        # The key lookup probe's explain: judge its inner command (with
        # queryPlanner verbosity it is only planned, with executionStats run).
        verbosity = command.get("verbosity", "?")
        command = command["explain"]
        name = next(iter(command))
        row["note"] = f"explain ({verbosity}) of the key lookup"
    to_explain = {k: v for k, v in command.items() if k not in NOT_EXPLAINED}
    answer = client[db].command({"explain": to_explain, "verbosity": "queryPlanner"})
    for plan in winning_plans(answer):
        row["stages"].extend(stages_of(plan, []))
    stages = row["stages"]
    fast_count = name == "count" and not command.get("query") and "hint" not in command
    if fast_count:
        # mongod answers `{count: coll}` without a query from collection
        # metadata (RECORD_STORE_FAST_COUNT); the test server explains it as
        # a COLLSCAN. Counted as metadata, and shown as explained.
        row["kind"] = "metadata"
        row["note"] = "estimatedDocumentCount: RECORD_STORE_FAST_COUNT on mongod"
    elif "COLLSCAN" in stages:
        row["kind"] = "collscan"
    elif any(s in ("IXSCAN", "COUNT_SCAN", "DISTINCT_SCAN", "IDHACK", "EXPRESS_IXSCAN") for s in stages):
        row["kind"] = "index"
    return row


def profiled(client: MongoClient, db: str, action) -> list[dict]:
    """Runs `action` with the profiler at level 2 on `db` and returns the
    commands it recorded, oldest first. Nothing else talks to `db` meanwhile
    (the profile collection is dropped first, with the profiler off)."""
    d = client[db]
    d.command("profile", 0)
    d.drop_collection("system.profile")
    d.command("profile", 2)
    try:
        action()
    finally:
        d.command("profile", 0)
    entries = list(d["system.profile"].find().sort("ts", 1))
    # The test server records an explain under the database alone; mongod under the collection.
    return [e for e in entries
            if e.get("command") and next(iter(e["command"])) not in CONTINUATIONS
            and (e.get("ns", "").startswith(f"{db}.") or (e.get("ns") == db and next(iter(e["command"])) == "explain"))]


def plan_cost(client: MongoClient, db: str, entries: list[dict]) -> dict:
    rows = [classify(client, db, e["command"]) | {"millis": e.get("millis", 0)} for e in entries]
    return {
        "rows": rows,
        "commands": len(rows),
        "collscan": sum(r["kind"] == "collscan" for r in rows),
        "explained_collscan": sum(r["stages"].count("COLLSCAN") for r in rows),
        "index": sum(r["kind"] == "index" for r in rows),
        "other": sum(r["kind"] in ("catalog", "metadata", "other") for r in rows),
    }


# ---------------------------------------------------------------- runs


def run_check(binary: Path, config: Path, found: list | None = None) -> float:
    """Runs one `uniqwatch check` process; appends what it found to `found`."""
    start = time.perf_counter()
    p = subprocess.run([str(binary), "check", "--config", str(config), "--format", "json"],
                       capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if p.returncode not in (0, 1):
        raise RuntimeError(f"uniqwatch check exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    if found is not None:
        t = json.loads(p.stdout)["targets"][0]
        d, m = t["duplicates"], t["missing"]
        found.append(f"exit {p.returncode}; index present={t['index']['present']}; duplicates keys={d['keys']} "
                     f"documents={d['documents']} ({d['method']}); missing absent={m['absent']} "
                     f"null={m['null']} empty={m['empty']}; documents={t['documents']}")
    return elapsed


def seed_manual(client: MongoClient, db: str) -> None:
    coll = client[db].chats
    list(coll.list_indexes())
    list(coll.aggregate(SEED_GROUP, allowDiskUse=True))
    coll.count_documents(SEED_MISSING)


def seed_both_queries(client: MongoClient, db: str) -> float:
    start = time.perf_counter()
    list(client[db].chats.aggregate(SEED_GROUP, allowDiskUse=True))
    client[db].chats.count_documents(SEED_MISSING)
    return time.perf_counter() - start


def seed_aggregation(client: MongoClient, db: str) -> float:
    start = time.perf_counter()
    list(client[db].chats.aggregate(SEED_GROUP, allowDiskUse=True))
    return time.perf_counter() - start


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if not m:
            raise RuntimeError(f"unreadable wrk latency {value!r}")
        n, unit = float(m.group(1)), m.group(2)
        return n * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    figures = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            figures[f"p{pct}"] = ms(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    figures["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", text)
    figures["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    figures["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", text)
    figures["socket_errors"] = m.group(0) if m else "none"
    return figures


def stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):7.2f} s   min {min(xs):7.2f} s   max {max(xs):7.2f} s"


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/uniqwatch")
    ap.add_argument("--count", type=int, default=100_000, help="chats per database")
    ap.add_argument("--rounds", type=int, default=7, help="alternating wall-time rounds")
    ap.add_argument("--wrk-duration", default="10s")
    ap.add_argument("--uri", help="a scratch MongoDB server (e.g. a real mongod) instead of a local SecantusDB; "
                                   "its databases bench_noindex, bench_index, bench_semantic and "
                                   "bench_semantic_small are dropped")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results-checks.txt")
    ap.add_argument("--sections", default="checks,semantic",
                    help="comma-separated: checks (sections 1 to 4), semantic (section 5)")
    ap.add_argument("--semantic-small", type=int, default=20_000,
                    help="chats in the smaller semantic database, for peak RSS at two sizes")
    ap.add_argument("--semantic-rounds", type=int, default=3, help="alternating wall-time rounds, semantic pass")
    ap.add_argument("--breakage", type=float, default=0.01, help="share of the chats broken per way, semantic pass")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="uniqwatch-bench-"))
    server = None
    if args.uri:
        uri = args.uri
        server_name = f"MongoDB at {uri} (its bench_* databases are dropped and re-seeded)"
    else:
        db_port = free_port()
        uri = f"mongodb://127.0.0.1:{db_port}/"
        server_name = f"SecantusDB 0.7.0b3, in memory, 127.0.0.1:{db_port}"
        server_log = open(work / "secantusd.log", "w")
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/secantusd-py"), "--host", "127.0.0.1", "--port", str(db_port),
             "--storage-path", ":memory:"],
            stdout=server_log, stderr=subprocess.STDOUT)
    daemon = None
    try:
        client = MongoClient(uri, appname="uniqwatch-bench", serverSelectionTimeoutMS=2000)
        wait_until("SecantusDB", lambda: client.admin.command("ping")["ok"] == 1.0, 60)

        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                          if l.startswith("MemTotal")).split()[1])
        version = subprocess.run([str(args.binary), "--version"], capture_output=True, text=True).stdout.strip()
        say(f"# uniqwatch check benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        say(f"machine: {os.cpu_count()} CPUs (nproc), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, load average at start {os.getloadavg()[0]:.2f}")
        say(f"binary: {version} (release build); server: {server_name}")

        sections = set(args.sections.split(","))
        if "checks" in sections:
            configs = {}
            for db, extra in (("bench_noindex", []), ("bench_index", ["--unique-index"])):
                t = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, str(ROOT / "scripts/seed.py"), "--uri", uri, "--db", db,
                     "--count", str(args.count), "--users", "0", "--drop", *extra],
                    capture_output=True, text=True, check=True).stdout.strip()
                say(f"{out} ({'unique sparse index' if extra else 'no unique index'}, "
                    f"{time.perf_counter() - t:.0f} s)")
                configs[db] = work / f"{db}.toml"
                configs[db].write_text(config_toml(uri, db, "127.0.0.1:0", work / "state"))

            # ---- 1. cost to the database
            say()
            say("## 1. Cost to the database (system.profile at level 2, each command explained again)")
            expected = {"bench_noindex": 1, "bench_index": 0}
            costs = {}
            found: dict[str, list] = {}
            for db in ("bench_noindex", "bench_index"):
                found[db] = []
                costs[("uniqwatch", db)] = plan_cost(
                    client, db, profiled(client, db, lambda db=db: run_check(args.binary, configs[db], found[db])))
                say(f"the pass on {db}: {found[db][0]}")
                costs[("seed", db)] = plan_cost(client, db, profiled(client, db, lambda db=db: seed_manual(client, db)))
            say()
            say(f"{'variant':<16} {'way':<26} {'commands':>8} {'COLLSCAN':>8} {'IXSCAN/COUNT_SCAN':>17} "
                f"{'other':>5}   expectation")
            for db in ("bench_noindex", "bench_index"):
                for way, label in (("uniqwatch", "uniqwatch check (1 pass)"), ("seed", "seed's manual queries")):
                    c = costs[(way, db)]
                    verdict = ""
                    if way == "uniqwatch":
                        ok = c["collscan"] == expected[db]
                        verdict = f"{'PASS' if ok else 'FAIL'} (expected {expected[db]} COLLSCAN)"
                    say(f"{db:<16} {label:<26} {c['commands']:>8} {c['collscan']:>8} {c['index']:>17} "
                        f"{c['other']:>5}   {verdict}")
            say()
            say("'other' = catalog reads (listIndexes) and collection metadata (a count without a query).")
            say("Commands as recorded by the profiler, with the stages of their explained winning plan and")
            say("the server time the profiler recorded for each:")
            for (way, db), c in costs.items():
                say(f"  {way} on {db}:")
                for r in c["rows"]:
                    stages = ">".join(r["stages"]) or "-"
                    note = f"  [{r['note']}]" if r["note"] else ""
                    say(f"    {r['kind']:<9} {stages:<22} {r['millis']:>6} ms  {r['command']}{note}")
            quirks = sum(c["explained_collscan"] - c["collscan"] for (w, _), c in costs.items() if w == "uniqwatch")
            if quirks:
                say(f"Note: the test server's explain labels {quirks} metadata count(s) of the uniqwatch passes as "
                    "COLLSCAN (and does walk the documents to answer them); mongod plans RECORD_STORE_FAST_COUNT.")

            # ---- 2. wall time
            say()
            say(f"## 2. Wall time, {args.rounds} rounds, the runs alternating (order rotated each round)")
            runs = {
                "uniqwatch check, bench_noindex (process end to end)": lambda: run_check(args.binary,
                                                                                        configs["bench_noindex"]),
                "seed's aggregation, bench_noindex (pymongo, cursor drained)": lambda: seed_aggregation(
                    client, "bench_noindex"),
                "seed's two queries, bench_noindex (aggregation + count)": lambda: seed_both_queries(
                    client, "bench_noindex"),
                "uniqwatch check, bench_index (process end to end)": lambda: run_check(args.binary,
                                                                                      configs["bench_index"]),
            }
            names = list(runs)
            times: dict[str, list[float]] = {n: [] for n in names}
            for i in range(args.rounds):
                order = names[i % len(names):] + names[:i % len(names)]
                for n in order:
                    times[n].append(runs[n]())
            for n in names:
                say(f"{n:<62} {spread(times[n])}")
                say(f"{'':<62} runs: {' '.join(f'{x:.2f}' for x in times[n])}")
            say(f"load average after the rounds: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")

            # ---- 3. peak RSS
            say()
            say("## 3. Peak memory during the pass over bench_noindex")
            web_port = free_port()
            daemon_config = work / "daemon.toml"
            daemon_config.write_text(config_toml(uri, "bench_noindex", f"127.0.0.1:{web_port}", work / "state"))
            daemon_log = open(work / "daemon.log", "w")
            started = time.perf_counter()
            daemon = subprocess.Popen([str(args.binary), "run", "--config", str(daemon_config)],
                                      stdout=daemon_log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{web_port}"
            wait_until("/readyz 200", lambda: http_status(base + "/readyz") == 200, 600)
            ready_after = time.perf_counter() - started
            hwm = status_kb(daemon.pid, "VmHWM")
            rss = status_kb(daemon.pid, "VmRSS")
            say(f"daemon (uniqwatch run): ready after {ready_after:.2f} s; peak RSS (VmHWM) {hwm / 1024:.1f} MiB; "
                f"RSS after the pass (VmRSS) {rss / 1024:.1f} MiB")
            timed = subprocess.run(["/usr/bin/time", "-v", str(args.binary), "check", "--config",
                                    str(configs["bench_noindex"]), "--format", "json"],
                                   capture_output=True, text=True)
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timed.stderr)
            if not m or timed.returncode not in (0, 1):
                raise RuntimeError(f"/usr/bin/time -v uniqwatch check failed: {timed.stderr[-2000:]}")
            say(f"one `uniqwatch check` process: maximum RSS (/usr/bin/time -v) {int(m.group(1)) / 1024:.1f} MiB")

            # ---- 4. /metrics under load
            say()
            say(f"## 4. /metrics under concurrent load: wrk -t2 -c32 -d{args.wrk_duration} --latency (loopback)")
            wrk = subprocess.run(["wrk", "-t2", "-c32", f"-d{args.wrk_duration}", "--latency", base + "/metrics"],
                                 capture_output=True, text=True, check=True)
            w = parse_wrk(wrk.stdout)
            say(f"requests/s {w['rps']:.0f} ({w['requests']} requests; non-2xx: {w['non2xx']}; "
                f"socket errors: {w['socket_errors'].replace('Socket errors: ', '')})")
            say("latency " + "  ".join(f"{k} {w[k]:.2f} ms" for k in ("p50", "p75", "p90", "p99") if k in w))
            say(f"daemon RSS after the load: {status_kb(daemon.pid, 'VmRSS') / 1024:.1f} MiB")
        if daemon is not None:
            stop(daemon)
        if "semantic" in sections:
            bench_semantic.section(say, client, uri, args.binary, work, args.count, args.semantic_small,
                                   args.breakage, args.semantic_rounds)
    finally:
        if daemon is not None:
            stop(daemon)
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(out_lines) + "\n")
    print(f"\n(written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
