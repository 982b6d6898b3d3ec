#!/usr/bin/env bash
# Chunk + hash throughput of `ferry scan DIR` against `b3sum --num-threads 2`
# over the same files (docs/benchmarks.md, "Chunk + hash throughput"), per
# pair of the corpus (the `new` folder of each).
#
# Page cache warm (every file is read once first). N rounds (default 9),
# each running both tools one after the other; the table shows the best
# wall time of each tool (process start-up included for both), their ratio,
# and the median CPU time (user + system, from wait4) of each, which says
# how much work each did whatever else the machine was running. The load
# average before the first round is printed: compare wall times measured on
# an idle machine only. BEFORE=path/to/another/ferry adds a "before" build
# (e.g. the scan example of an older commit) to every round.
#
# Usage: scripts/bench-scan.sh CORPUS_DIR [PAIR ...]   (from the project root)
# Needs: a release build (make release), b3sum, python3.
set -euo pipefail
CORPUS=${1:?usage: scripts/bench-scan.sh CORPUS_DIR [PAIR ...]}; shift
[ $# -gt 0 ] || set -- numpy pandas pyarrow typescript ts-nightly
F=${FERRY:-$PWD/target/release/ferry}
[ -x "$F" ] || { echo "no release build: run make release" >&2; exit 1; }
for t in b3sum python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

exec python3 - "$F" "${BEFORE:-}" "$CORPUS" "${N:-9}" "$@" <<'PY'
import json, os, statistics, subprocess, sys, tempfile, time

ferry, before, corpus, rounds, pairs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]

def run(argv, stdin=None):
    """Wall seconds, CPU seconds (user + system, children included), stdout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{argv[0]} failed")
    return wall, ru.ru_utime + ru.ru_stime, out

print(f"load average before: {' '.join(open('/proc/loadavg').read().split()[:3])}; "
      f"{rounds} rounds; {os.cpu_count()} CPUs\n")
if before:
    print("| pair | bytes | before: scan MiB/s | scan MiB/s | b3sum MiB/s | scan / b3sum | CPU ms, before | CPU ms, scan | CPU ms, b3sum |")
    print("|---|---|---|---|---|---|---|---|---|")
else:
    print("| pair | bytes | ferry scan MiB/s | b3sum MiB/s | scan / b3sum | CPU ms, scan | CPU ms, b3sum |")
    print("|---|---|---|---|---|---|---|")
for pair in pairs:
    new = os.path.realpath(os.path.join(corpus, pair, "new"))
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(new) for f in fs
                   if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
    for f in files:  # warm the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass
    listing = tempfile.TemporaryFile()
    listing.write("\0".join(files).encode())
    scan, b3, old = [], [], []
    size = None
    for _ in range(rounds):
        if before:
            wall, cpu, _ = run([before, "scan", new, "--json"])
            old.append((wall, cpu))
        wall, cpu, out = run([ferry, "scan", new, "--json"])
        scan.append((wall, cpu))
        size = json.loads(out)["bytes"]
        listing.seek(0)
        wall, cpu, _ = run(["xargs", "-0", "b3sum", "--num-threads", "2"], stdin=listing)
        b3.append((wall, cpu))
    mib = size / 1048576
    s, b = min(x[0] for x in scan), min(x[0] for x in b3)
    cs, cb = statistics.median(x[1] for x in scan), statistics.median(x[1] for x in b3)
    if before:
        o, co = min(x[0] for x in old), statistics.median(x[1] for x in old)
        print(f"| {pair} | {size:,} | {mib / o:,.0f} | {mib / s:,.0f} | {mib / b:,.0f} | {b / s:.2f} "
              f"| {co * 1000:.0f} | {cs * 1000:.0f} | {cb * 1000:.0f} |")
    else:
        print(f"| {pair} | {size:,} | {mib / s:,.0f} | {mib / b:,.0f} | {b / s:.2f} | {cs * 1000:.0f} | {cb * 1000:.0f} |")
PY
