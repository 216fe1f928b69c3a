#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run apq-bench with --json and check what it wrote.

usage: check-json.py APQ_BENCH [apq-bench arguments...]

Passes if apq-bench succeeds and
  - its JSON is an array of row objects, each with the keys a comparison
    needs, of the right types (null only where a value is unknown: a
    skipped queue, an idle row without packets, a queue that cannot count
    its wakeups);
  - every queue `apq-bench --list` names has rows, or a row saying why it
    was skipped;
  - apq ran in every scenario of the run, in-process and in two processes;
  - every row that ran moved every packet it was offered, in order, with
    no lost wakeup caught;
  - the netback section's rows (group "netback") have their own keys: each
    that ran measured a throughput, and the relays' rows (all but veth)
    their frames, wakeups per frame and CPU per Gbit/s;
  - the paired ratios (group "ratios", and the goals' *_paired members)
    are consistent: n pairs, min <= median <= max, crosses_one exactly
    when min < 1 < max; and every row that ran in a scenario with apq
    adaptive has its ratios, one pair per run;
  - the CSV next to it has the same rows, and the PNGs are there when
    gnuplot is.
Independent of apq-bench's own writer, so a malformed file (a NaN, a
trailing comma) fails here.
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

NUM = (int, float)
# key -> (accepted types, may be null)
REQUIRED = {
    "impl": ((str,), False),
    "policy": ((str,), False),
    "scenario": ((str,), False),
    "processes": ((int,), True),
    "rate": (NUM, True),
    "size": ((int,), True),
    "pps": (NUM, True),
    "wakeups_per_pkt": (NUM, True),
    "consumer_cpu": (NUM, True),
    "p50_ns": (NUM, True),
    "p99_ns": (NUM, True),
    "skipped": ((bool,), False),
    "ok": ((bool,), False),
}
RAN = {
    "processes": ((int,), False),
    "rate": (NUM, False),
    "size": ((int,), False),
    "pps": (NUM, False),
    "consumer_cpu": (NUM, False),
    "producer_cpu": (NUM, False),
    "producer_call_cpu": (NUM, True),
    "cost": (NUM, True),
    "packets_offered": ((int,), False),
    "packets_arrived": ((int,), False),
    "packets_bad": ((int,), False),
    "rescues": ((int,), False),
    "wakeups_source": ((str,), False),
    "group": ((str,), False),
}


# The netback section's rows: iperf3 across examples/netback.
NETBACK = {
    "impl": ((str,), False),
    "policy": ((str,), False),
    "scenario": ((str,), False),
    "backend": ((str,), False),
    "skipped": ((bool,), False),
    "ok": ((bool,), False),
    "gbps": (NUM, True),
    "wakeups_per_frame": (NUM, True),
    "cpu_per_gbit": (NUM, True),
    "rtt_p50_ns": (NUM, True),
    "rtt_p99_ns": (NUM, True),
}
NETBACK_RAN = {
    "gbps": (NUM, False),
    "frames_per_s": (NUM, True),
    "runs": ((int,), False),
}


def reject_constant(name):
    """Python's reader accepts NaN and Infinity; JSON does not."""
    raise ValueError(f"not JSON: {name}")


def type_problems(name, row, keys):
    problems = []
    for key, (types, nullable) in keys.items():
        if key not in row:
            problems.append(f"{name}: no key {key!r}")
            continue
        v = row[key]
        if v is None and nullable:
            continue
        if isinstance(v, bool) and bool not in types:
            problems.append(f"{name}: {key!r} is {v!r}")
        elif not isinstance(v, types):
            problems.append(f"{name}: {key!r} is {v!r}")
        elif isinstance(v, float) and not math.isfinite(v):
            problems.append(f"{name}: {key!r} is {v!r}")
    return problems


def row_name(i, row):
    return f"row {i} ({row['impl']} {row['policy']} {row['scenario']})"


def skip_problems(name, row):
    """A skipped row must say why."""
    if not isinstance(row.get("why"), str) or not row["why"]:
        return [f"{name}: skipped without saying why"]
    return []


def netback_problems(i, row):
    """The reasons netback row i is not acceptable (empty if it is)."""
    problems = type_problems(f"row {i}", row, NETBACK)
    if problems:
        return problems
    name = row_name(i, row)
    if row["skipped"]:
        return skip_problems(name, row)
    problems = type_problems(name, row, NETBACK_RAN)
    if problems:
        return problems
    if not row["ok"]:
        problems.append(f"{name}: failed: {row.get('error')}")
    if not row["gbps"] > 0:
        problems.append(f"{name}: gbps {row['gbps']}")
    if row["impl"] != "veth":
        for key in ("frames_per_s", "wakeups_per_frame", "cpu_per_gbit"):
            if row[key] is None or row[key] < 0:
                problems.append(f"{name}: {key} {row[key]}")
    if row["rtt_p50_ns"] is None:
        problems.append(f"{name}: no round trips measured")
    return problems


def is_netback(row):
    return isinstance(row, dict) and row.get("group") == "netback"


def is_goals(row):
    return isinstance(row, dict) and row.get("group") == "goals"


def is_ratios(row):
    return isinstance(row, dict) and row.get("group") == "ratios"


def is_summary(row):
    return is_goals(row) or is_ratios(row)


SPREAD = {
    "n": ((int,), False),
    "median": (NUM, False),
    "min": (NUM, False),
    "max": (NUM, False),
    "crosses_one": ((bool,), False),
}


def spread_problems(name, s):
    """A paired ratio: null (no pair), or its median and range over n."""
    if s is None:
        return []
    if not isinstance(s, dict):
        return [f"{name}: not an object: {s!r}"]
    problems = type_problems(name, s, SPREAD)
    if problems:
        return problems
    if s["n"] < 1:
        problems.append(f"{name}: n {s['n']}")
    if not s["min"] <= s["median"] <= s["max"]:
        problems.append(f"{name}: median {s['median']} outside "
                        f"[{s['min']}, {s['max']}]")
    if s["crosses_one"] != (s["min"] < 1 < s["max"]):
        problems.append(f"{name}: crosses_one {s['crosses_one']} for "
                        f"[{s['min']}, {s['max']}]")
    return problems


def goals_problems(i, row):
    """The goals summary: each goal its paired ratios and a verdict, or
    why it was skipped."""
    goals = row.get("goals")
    if not isinstance(goals, dict):
        return [f"row {i}: goals without a 'goals' object"]
    problems = []
    for name, g in goals.items():
        name = f"goal {name}"
        p = type_problems(name, g, {
            "pass": ((bool,), False),
            "skipped": ((bool,), False),
        })
        if p:
            problems += p
            continue
        if g["skipped"]:
            problems += skip_problems(name, g)
            continue
        problems += type_problems(name, g, {"versus": ((str,), False)})
        paired = [k for k in g if k.endswith("_paired")]
        if not paired:
            problems.append(f"{name}: no paired ratio")
        for key in paired:
            problems += spread_problems(f"{name}: {key}", g[key])
            plain = key[:-len("_paired")]
            if g[key] is not None and g.get(plain) != g[key]["median"]:
                problems.append(f"{name}: {plain} {g.get(plain)} is not "
                                f"the median {g[key]['median']}")
    return problems


RATIO_METRICS = ("pps", "consumer_cpu", "cost", "p50", "wakeups")


def ratios_problems(i, row):
    """apq adaptive / each other row of its scenario, paired."""
    ratios = row.get("ratios")
    if not isinstance(ratios, list):
        return [f"row {i}: ratios without a 'ratios' list"]
    problems = []
    for j, r in enumerate(ratios):
        name = f"ratio {j}"
        p = type_problems(name, r, {
            "scenario": ((str,), False),
            "processes": ((int,), False),
            "versus_impl": ((str,), False),
            "versus_policy": ((str,), False),
        })
        if p:
            problems += p
            continue
        name = (f"ratio apq adaptive / {r['versus_impl']} "
                f"{r['versus_policy']} {r['scenario']}")
        for key in RATIO_METRICS:
            if key not in r:
                problems.append(f"{name}: no key {key!r}")
            else:
                problems += spread_problems(f"{name}: {key}", r[key])
    return problems


def pairing_problems(ran, ratios):
    """Every row that ran beside apq adaptive has one pair per run."""
    problems = []
    found = {(r["scenario"], r["versus_impl"], r["versus_policy"]): r
             for r in ratios}
    anchors = {(r["scenario"], r["processes"]): r for r in ran
               if r["impl"] == "apq" and r["policy"] == "adaptive"}
    for r in ran:
        anchor = anchors.get((r["scenario"], r["processes"]))
        if not anchor or r is anchor or r["group"] == "idle":
            continue
        name = f"{r['impl']} {r['policy']} {r['scenario']}"
        got = found.get((r["scenario"], r["impl"], r["policy"]))
        if got is None:
            problems.append(f"{name}: no paired ratios with apq adaptive")
        elif got["pps"] is None or got["pps"]["n"] != r["runs"]:
            problems.append(f"{name}: {r['runs']} runs, paired pkt/s "
                            f"ratios {got['pps']}")
        if anchor["runs"] < r["runs"]:
            problems.append(f"{name}: {r['runs']} runs, apq adaptive "
                            f"only {anchor['runs']}")
    return problems


def row_problems(i, row):
    """The reasons row i is not acceptable (empty if it is)."""
    if not isinstance(row, dict):
        return [f"row {i}: not an object"]
    if is_netback(row):
        return netback_problems(i, row)
    if is_goals(row):
        return goals_problems(i, row)
    if is_ratios(row):
        return ratios_problems(i, row)
    problems = type_problems(f"row {i}", row, REQUIRED)
    if problems:
        return problems
    name = row_name(i, row)
    if row["skipped"]:
        return skip_problems(name, row)
    problems = type_problems(name, row, RAN)
    if problems:
        return problems
    idle = row["group"] == "idle"
    if row["processes"] not in (1, 2):
        problems.append(f"{name}: processes {row['processes']}")
    if row["size"] < 8 or row["rate"] < 0:
        problems.append(f"{name}: size {row['size']}, rate {row['rate']}")
    if not row["ok"]:
        problems.append(f"{name}: failed: {row.get('error')}")
    offered, arrived = row["packets_offered"], row["packets_arrived"]
    if offered != arrived or (offered <= 0 and not idle):
        problems.append(f"{name}: offered {offered}, arrived {arrived}")
    if row["packets_bad"]:
        problems.append(f"{name}: {row['packets_bad']} packets damaged "
                        "or out of order")
    if row["rescues"]:
        problems.append(f"{name}: {row['rescues']} lost wakeups caught")
    if not idle and not row["pps"] > 0:
        problems.append(f"{name}: pps {row['pps']}")
    for key in ("consumer_cpu", "producer_cpu"):
        if not 0 <= row[key] <= 1.5:
            problems.append(f"{name}: {key} {row[key]}")
    wpp = row["wakeups_per_pkt"]
    if wpp is None:
        if not idle and row["wakeups_source"] != "unknown":
            problems.append(f"{name}: wakeups_per_pkt null, source "
                            f"{row['wakeups_source']}")
    elif wpp < 0:
        problems.append(f"{name}: wakeups_per_pkt {wpp}")
    if not idle and row["p50_ns"] is None:
        problems.append(f"{name}: no latency")
    return problems


def listed_impls(bench):
    """Queue names apq-bench --list reports (run, or skipped)."""
    out = subprocess.run([bench, "--list"], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        if line.startswith("scenarios:"):
            break
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("threads:", "processes:",
                                            "skipped:"):
            names.add(parts[0])
    return names


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    bench = argv[1]
    tmp = tempfile.mkdtemp(prefix="apq-bench-")
    path = os.path.join(tmp, "out.json")
    try:
        cmd = argv[1:] + ["--json", path]
        run = subprocess.run(cmd, check=False)
        if run.returncode != 0:
            print(f"check-json: {' '.join(cmd)}: exit status "
                  f"{run.returncode}", file=sys.stderr)
            return 1
        try:
            with open(path, encoding="utf-8") as f:
                rows = json.load(f, parse_constant=reject_constant)
        except ValueError as e:
            print(f"check-json: malformed JSON: {e}", file=sys.stderr)
            return 1
        if not isinstance(rows, list) or not rows:
            print("check-json: expected a non-empty array of rows",
                  file=sys.stderr)
            return 1
        problems = [p for i, row in enumerate(rows)
                    for p in row_problems(i, row)]
        if not problems:
            impls = {r["impl"] for r in rows}
            for name in sorted(listed_impls(bench) - impls):
                problems.append(f"queue {name}: neither rows nor a reason "
                                "for skipping it")
            ran = [r for r in rows if not is_summary(r) and not r["skipped"]
                   and not is_netback(r)]
            for scen in sorted({r["scenario"] for r in ran}):
                if not any(r["impl"] == "apq" and r["scenario"] == scen
                           for r in ran):
                    problems.append(f"scenario {scen}: no apq row")
            for procs in (1, 2):
                if not any(r["impl"] == "apq" and r["processes"] == procs
                           for r in ran):
                    problems.append(f"no apq row with {procs} process(es)")
            ratios = [x for r in rows if is_ratios(r) for x in r["ratios"]]
            problems += pairing_problems(ran, ratios)
        queue_rows = [r for r in rows
                      if not is_netback(r) and not is_summary(r)]
        with open(os.path.join(tmp, "out.csv"), encoding="utf-8") as f:
            n_csv = sum(1 for _ in csv.DictReader(f))
        if n_csv != len(queue_rows):
            problems.append(f"CSV: {n_csv} rows, JSON: {len(queue_rows)}")
        n_nb = sum(1 for r in rows if is_netback(r))
        if n_nb:
            with open(os.path.join(tmp, "out-netback.csv"),
                      encoding="utf-8") as f:
                n_csv = sum(1 for _ in csv.DictReader(f))
            if n_csv != n_nb:
                problems.append(f"netback CSV: {n_csv} rows, JSON: {n_nb}")
        if shutil.which("gnuplot") and "--no-plots" not in argv:
            for plot in ("latency", "cpu", "wakeups"):
                png = os.path.join(tmp, f"out-{plot}.png")
                if not os.path.isfile(png) or os.path.getsize(png) == 0:
                    problems.append(f"no plot {os.path.basename(png)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        print(f"check-json: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-json: ok, {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
