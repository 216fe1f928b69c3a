#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run apq-bench with --json and check what it wrote.

usage: check-json.py APQ_BENCH [apq-bench arguments...]

Passes if apq-bench succeeds and its JSON is an array of row objects, each
with the keys a comparison needs, of the right types, and with every packet
the producer offered arrived.  Independent of apq-bench's own writer, so a
malformed file (a NaN, a trailing comma) fails here.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

# key -> accepted types
REQUIRED = {
    "impl": (str,),
    "policy": (str,),
    "scenario": (str,),
    "processes": (int,),
    "rate": (int, float),
    "size": (int,),
    "pps": (int, float),
    "wakeups_per_pkt": (int, float),
    "consumer_cpu": (int, float),
}


def reject_constant(name):
    """Python's reader accepts NaN and Infinity; JSON does not."""
    raise ValueError(f"not JSON: {name}")


def row_problems(i, row):
    """The reasons row i is not acceptable (empty if it is)."""
    if not isinstance(row, dict):
        return [f"row {i}: not an object"]
    problems = []
    for key, types in REQUIRED.items():
        if key not in row:
            problems.append(f"row {i}: no key {key!r}")
        elif isinstance(row[key], bool) or not isinstance(row[key], types):
            problems.append(f"row {i}: {key!r} is {row[key]!r}")
    if problems:
        return problems
    name = f"row {i} ({row['impl']} {row['policy']} {row['scenario']})"
    if row["processes"] != 1 or row["rate"] != 0:
        problems.append(f"{name}: processes/rate {row['processes']}/{row['rate']}")
    if row["size"] <= 0:
        problems.append(f"{name}: size {row['size']}")
    if not (math.isfinite(row["pps"]) and row["pps"] > 0):
        problems.append(f"{name}: pps {row['pps']}")
    for key in ("wakeups_per_pkt", "consumer_cpu"):
        if not (math.isfinite(row[key]) and row[key] >= 0):
            problems.append(f"{name}: {key} {row[key]}")
    offered = row.get("packets_offered")
    arrived = row.get("packets_arrived")
    if offered is None or arrived is None or offered != arrived or offered <= 0:
        problems.append(f"{name}: offered {offered}, arrived {arrived}")
    if row.get("packets_bad", 0) != 0:
        problems.append(f"{name}: {row['packets_bad']} packets out of sequence")
    return problems


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    fd, path = tempfile.mkstemp(prefix="apq-bench-", suffix=".json")
    os.close(fd)
    try:
        cmd = argv[1:] + ["--json", path]
        run = subprocess.run(cmd, check=False)
        if run.returncode != 0:
            print(f"check-json: {' '.join(cmd)}: exit status {run.returncode}",
                  file=sys.stderr)
            return 1
        with open(path, encoding="utf-8") as f:
            rows = json.load(f, parse_constant=reject_constant)
    except ValueError as e:
        print(f"check-json: malformed JSON: {e}", file=sys.stderr)
        return 1
    finally:
        os.unlink(path)
    if not isinstance(rows, list) or not rows:
        print("check-json: expected a non-empty array of rows", file=sys.stderr)
        return 1
    problems = [p for i, row in enumerate(rows) for p in row_problems(i, row)]
    for p in problems:
        print(f"check-json: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-json: ok, {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
