"""Section 5 of the check benchmark: the semantic pass of `[target.canonical]`.

`scripts/seed.py --unique-index --breakage 0.01` seeds chats whose unique
index is healthy while 1% of them break the invariant behind the key in each
of four ways: a keyless legacy twin of a keyed chat, a twin keyed unsorted,
a key with another separator, and participants that drifted from their key.
Measured, on the large and a small copy:

(a) collection scans of one `uniqwatch check` pass (both check groups), from
    the profiler and explain as in section 1: expected 1, the canonical pass
    (the key checks walk the index);
(b) wall time of uniqwatch's canonical pass (its own `key_consistency`
    duration, which is the pass) against the aggregation an operator would
    paste in mongosh, alternating; both must find the same semantic
    duplicates, and uniqwatch the figures the seed planted;
(c) the daemon's peak RSS (`VmHWM`) over its start-up passes at both sizes.

Imported by bench_checks.py, whose helpers it reuses; it says its lines
through the `say` it is given.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_checks import (ROOT, config_toml, free_port, http_status, plan_cost, profiled, spread,
                          status_kb, wait_until)

CANONICAL = """
[target.canonical]
preset = "sorted_join"
fields = ["participants"]
separator = "_"
schedule = "0 0 0 1 1 *"
"""
# What an operator would paste in mongosh to find the same thing:
# participants.map(String).sort().join("_"), grouped, held more than once.
HAND = [
    {"$project": {"c": {"$reduce": {
        "input": {"$sortArray": {"input": {"$map": {"input": "$participants", "in": {"$toString": "$$this"}}},
                                 "sortBy": 1}},
        "initialValue": "",
        "in": {"$cond": [{"$eq": ["$$value", ""]}, "$$this", {"$concat": ["$$value", "_", "$$this"]}]}}}}},
    {"$group": {"_id": "$c", "count": {"$sum": 1}}},
    {"$match": {"count": {"$gt": 1}}},
]


def planted(count: int, breakage: float) -> dict:
    """What seed.py --unique-index --breakage puts there: per way one chat in
    every 1/breakage; plus its 7 keyless, 1 null and 1 empty legacy chats
    (one canonical value held by the 7, all 9 derivable)."""
    every = round(1 / breakage)
    per_way = [sum(1 for n in range(count) if n % every == way) for way in (1, 2, 3, 4)]
    legacy, unsorted, separator, drift = per_way
    return {
        "documents": count + legacy + unsorted + 9,
        "mismatch": unsorted + separator + drift,
        "derivable": legacy + 9,
        "underivable": 0,
        "keys": legacy + unsorted + 1,
        "surplus": legacy + unsorted + 6,
    }


def check_json(binary: Path, config: Path) -> dict:
    p = subprocess.run([str(binary), "check", "--config", str(config), "--format", "json"],
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"uniqwatch check exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)["targets"][0]


def canonical_pass(binary: Path, config: Path) -> float:
    """uniqwatch's own time of the canonical pass, in seconds: the
    `key_consistency` line of `check` (the check that runs the pass;
    `canonical_duplicates` reads its result)."""
    p = subprocess.run([str(binary), "check", "--config", str(config)], capture_output=True, text=True)
    m = re.search(r"^\s+key_consistency\s+([\d.]+)ms", p.stdout, re.M)
    if p.returncode not in (0, 1) or not m:
        raise RuntimeError(f"uniqwatch check exited {p.returncode} without a key_consistency line: "
                           f"{(p.stdout + p.stderr)[-2000:]}")
    return float(m.group(1)) / 1000


def hand_rows(client, db: str) -> list[dict]:
    return list(client[db].chats.aggregate(HAND, allowDiskUse=True))


def hand_timed(client, db: str) -> float:
    start = time.perf_counter()
    hand_rows(client, db)
    return time.perf_counter() - start


def daemon_peak(binary: Path, uri: str, db: str, work: Path) -> tuple[float, float, float]:
    """Starts `uniqwatch run` on `db`, waits for both start-up passes (the key
    checks' readiness, then the canonical figures on /metrics), stops it.
    Returns (VmHWM MiB, VmRSS MiB, the pass's own seconds)."""
    port = free_port()
    config = work / f"daemon-{db}.toml"
    config.write_text(config_toml(uri, db, f"127.0.0.1:{port}", work / f"state-{db}") + CANONICAL)
    log = open(work / f"daemon-{db}.log", "w")
    daemon = subprocess.Popen([str(binary), "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    pattern = re.compile(r'^uniqwatch_check_duration_seconds\{[^}]*check="key_consistency"[^}]*\} (\S+)$', re.M)
    found: list[float] = []

    def passed() -> bool:
        if http_status(base + "/readyz") != 200:
            return False
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            text = r.read().decode()
        m = pattern.search(text)
        if m and "uniqwatch_canonical_duplicate_keys{" in text:
            found.append(float(m.group(1)))
            return True
        return False

    try:
        wait_until(f"both start-up passes on {db}", passed, 900)
        return status_kb(daemon.pid, "VmHWM") / 1024, status_kb(daemon.pid, "VmRSS") / 1024, found[-1]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()


def section(say, client, uri: str, binary: Path, work: Path, count: int, small: int, breakage: float,
            rounds: int) -> None:
    say()
    say(f"## 5. Semantic pass ([target.canonical] sorted_join of participants), {breakage:.0%} of the chats "
        "broken in each of four ways, unique index healthy")
    dbs = {"bench_semantic": count, "bench_semantic_small": small}
    configs = {}
    for db, n in dbs.items():
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts/seed.py"), "--uri", uri, "--db", db, "--count", str(n),
             "--users", "0", "--drop", "--unique-index", "--breakage", str(breakage)],
            capture_output=True, text=True, check=True).stdout.strip()
        say(f"{out} (unique sparse index, --breakage {breakage}, {time.perf_counter() - t:.0f} s)")
        configs[db] = work / f"{db}.toml"
        configs[db].write_text(config_toml(uri, db, "127.0.0.1:0", work / "state") + CANONICAL)

    # (a) collection scans, and what the pass found
    big = "bench_semantic"
    found: list[dict] = []
    cost = plan_cost(client, big, profiled(client, big, lambda: found.append(check_json(binary, configs[big]))))
    hand_cost = plan_cost(client, big, profiled(client, big, lambda: hand_rows(client, big)))
    t = found[0]
    k, c = t["key_consistency"], t["canonical_duplicates"]
    want = planted(count, breakage)
    got = {"documents": k["documents"], "mismatch": k["mismatch"], "derivable": k["derivable"],
           "underivable": k["underivable"], "keys": c["keys"], "surplus": c["documents"]}
    say(f"the pass on {big}: index present={t['index']['present']} unique={t['index']['unique']}; "
        f"duplicates keys={t['duplicates']['keys']}; key_consistency mismatch={k['mismatch']} "
        f"derivable={k['derivable']} underivable={k['underivable']} of {k['documents']}; "
        f"canonical_duplicates keys={c['keys']} documents={c['documents']}")
    say(f"planted by the seed: {want} -> {'PASS' if got == want else 'FAIL ' + str(got)}")
    say()
    say(f"{'way':<44} {'commands':>8} {'COLLSCAN':>8} {'IXSCAN/COUNT_SCAN':>17} {'other':>5}   expectation")
    for label, cst, expected in (("uniqwatch check (key checks + canonical pass)", cost, 1),
                                 ("operator's aggregation", hand_cost, None)):
        verdict = f"{'PASS' if cst['collscan'] == expected else 'FAIL'} (expected 1 COLLSCAN)" if expected else ""
        say(f"{label:<44} {cst['commands']:>8} {cst['collscan']:>8} {cst['index']:>17} {cst['other']:>5}   {verdict}")
    for way, cst in (("uniqwatch", cost), ("operator", hand_cost)):
        say(f"  {way} on {big}:")
        for r in cst["rows"]:
            note = f"  [{r['note']}]" if r["note"] else ""
            say(f"    {r['kind']:<9} {'>'.join(r['stages']) or '-':<22} {r['millis']:>6} ms  {r['command']}{note}")

    # (b) wall time, and the same semantic duplicates
    rows = hand_rows(client, big)
    surplus = sum(r["count"] - 1 for r in rows)
    same = len(rows) == c["keys"] and surplus == c["documents"]
    say()
    say(f"operator's aggregation: {len(rows)} canonical values held more than once, {surplus} surplus documents; "
        f"uniqwatch: {c['keys']}, {c['documents']} -> {'PASS (same)' if same else 'FAIL (differ)'}")
    say(f"wall time on {big}, {rounds} rounds, alternating (order swapped each round):")
    runs = {
        "uniqwatch canonical pass (its key_consistency duration)": lambda: canonical_pass(binary, configs[big]),
        "operator's aggregation (pymongo, cursor drained)": lambda: hand_timed(client, big),
    }
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for n in (names if i % 2 == 0 else names[::-1]):
            times[n].append(runs[n]())
    for n in names:
        say(f"{n:<62} {spread(times[n])}")
        say(f"{'':<62} runs: {' '.join(f'{x:.2f}' for x in times[n])}")

    # (c) peak RSS at two sizes
    say()
    say("daemon (uniqwatch run) over its start-up passes (key checks, then the canonical pass):")
    peaks = {}
    for db in ("bench_semantic_small", big):
        hwm, rss, took = daemon_peak(binary, uri, db, work)
        peaks[db] = hwm
        say(f"  {db:<22} {dbs[db]:>7} chats: peak RSS (VmHWM) {hwm:.1f} MiB; RSS after (VmRSS) {rss:.1f} MiB; "
            f"canonical pass {took:.2f} s")
    grown = peaks[big] - peaks["bench_semantic_small"]
    say(f"peak RSS at {count} chats minus at {small}: {grown:+.1f} MiB "
        f"-> {'PASS' if grown < 2.0 else 'FAIL'} (expected under 2 MiB: the cursor streams, samples are bounded)")
