#!/usr/bin/env bash
# What docs/benchmarks.md reports on the release pairs fetched by
# ../shared/corpus/fetch-corpus.sh, every reference measured in the same run:
#
# Bytes of an update old -> new:
#   whole zstd-3       tar of new, zstd -3 (no delta mechanism at all)
#   changed zstd-3     tar of the files of new that differ from old, zstd -3
#   rsync zstd-3       rsync -c --only-write-batch into a copy of old, batch zstd -3
#                      (-c everywhere: npm and wheel files keep fixed mtimes, so
#                      rsync's size+mtime quick check misses changed files of
#                      equal size, e.g. typescript's package.json)
#   casync 64K / 16K   chunks of new's casync store missing from old's, plus
#                      new's index (casync make, default compression)
#   bound              zstd -19 --long=27 --patch-from=OLD NEW per changed file
#                      (whole file at -19 when new), summed
#   ferry singles      ferry sync, server --group-level 0 (stored chunks only)
#   ferry groups       server --group-references false (runs of chunks in one
#                      zstd frame, no reference)
#   ferry              the defaults (groups against the client's old files)
# ferry figures are bytes_downloaded of `ferry sync --json`: every HTTP body
# byte (channel record, compressed manifest, chunk streams).
#
# Time and memory of the update, page cache warm and nothing dirty (sync
# after preparing the copy), best of N (default 3):
#   rsync daemon       rsync -a -c --delete --fsync rsync://127.0.0.1/... into a
#                      copy of old (daemon on loopback, no compression)
#   ferry sync         into a copy of an install of old, server cache warm,
#                      peak RSS from /usr/bin/time, requests from --json
#
# Usage: scripts/bench-pairs.sh CORPUS_DIR [PAIR ...]   (from the project root)
#   SKIP_SLOW=1 leaves out casync and the bound (minutes on the big pairs).
# Needs: a release build (make release), zstd, rsync, python3, /usr/bin/time;
# casync optional (Debian package casync).
set -euo pipefail
CORPUS=${1:?usage: scripts/bench-pairs.sh CORPUS_DIR [PAIR ...]}; shift
[ $# -gt 0 ] || set -- numpy pandas pyarrow typescript ts-nightly
F=${FERRY:-$PWD/target/release/ferry}
[ -x "$F" ] || { echo "no release build: run make release" >&2; exit 1; }
for t in zstd rsync python3 /usr/bin/time; do
  command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }
done
exec python3 - "$F" "$CORPUS" "${N:-3}" "${SKIP_SLOW:-}" "$@" <<'PY'
import atexit, contextlib, filecmp, json, os, re, shutil, socket, subprocess, sys, tempfile, time

ferry, corpus, rounds, skip_slow, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3]), bool(sys.argv[4]), sys.argv[5:]
have_casync = shutil.which("casync") is not None and not skip_slow

# Nothing is deleted while the script runs: folders it is done with move to
# one trash folder, removed at the end. On ext4 without a journal, creating a
# file scans past every inode freed in the last minute or more
# (`recently_deleted` in the kernel's inode allocator): deleting a copy of
# the install before each round made that scan up to a third of the timed
# sync's CPU, for ferry and rsync alike.
trash = tempfile.mkdtemp(prefix="ferry-bench-trash-", dir=os.environ.get("TMPDIR"))
discarded = 0
atexit.register(shutil.rmtree, trash, True)

def discard(path):
    global discarded
    if os.path.lexists(path):
        discarded += 1
        os.rename(path, os.path.join(trash, str(discarded)))

def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, **kw)

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(p):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {p}")

def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = p
    return out

def changed(old, new):
    o, n = files(old), files(new)
    return [(o.get(r), n[r]) for r in sorted(n) if r not in o or not filecmp.cmp(o[r], n[r], shallow=False)]

def zsize(cmd):
    return int(sh(cmd + " | wc -c").stdout)

def bound(old, new):
    total = 0
    for o, n in changed(old, new):
        patch = f"--patch-from='{o}'" if o else ""
        total += zsize(f"zstd -19 --long=27 {patch} -q -c '{n}'")
    return total

def casync(old, new, avg, w):
    for d in ("cs-old", "cs-new"):
        shutil.rmtree(os.path.join(w, d), ignore_errors=True)
    sh(f"casync make --chunk-size={avg} --store={w}/cs-old {w}/old.caidx '{old}'")
    sh(f"casync make --chunk-size={avg} --store={w}/cs-new {w}/new.caidx '{new}'")
    have = {os.path.basename(p) for p in files(f"{w}/cs-old").values()}
    return os.path.getsize(f"{w}/new.caidx") + sum(
        os.path.getsize(p) for p in files(f"{w}/cs-new").values() if os.path.basename(p) not in have)

class Server:
    def __init__(self, w, extra):
        self.data = os.path.join(w, "data"); discard(self.data)
        self.extra = extra
        self.port = port(); self.log = open(os.path.join(w, "server.log"), "w+")
        self.p = subprocess.Popen([ferry, "serve", "--data", self.data, "--listen", f"127.0.0.1:{self.port}",
                                   "--push-token", "tok-for-benchmarks-only", *extra], stderr=self.log)
        wait_port(self.port); self.url = f"http://127.0.0.1:{self.port}"
    def prepared(self, n):
        """Waits until the server logged n prepared transitions and n
        refined ones (none with groups off): clients after a deployment's
        first ones get refined frames, and a refinement running in the
        background would take a core from the timed sync."""
        if "--group-level" in self.extra and "0" in self.extra:
            return
        for _ in range(12000):
            self.log.seek(0)
            log = self.log.read()
            if log.count("prepared") >= n and log.count("refined") >= n: return
            time.sleep(0.05)
        raise SystemExit(f"the server did not prepare and refine {n} transitions in 10 minutes")
    def stop(self):
        self.p.terminate(); self.p.wait()

def ferry_update(old, new, w, extra, timed):
    """Bytes (and, when timed, best wall, peak RSS, requests) of an update."""
    for d in ("key", "key.pub", "inst", "try"):
        p = os.path.join(w, d)
        discard(p)
    pub = sh(f"{ferry} keygen --secret-key {w}/key 2>/dev/null").stdout.decode().split()[-1]
    s = Server(w, extra)
    try:
        push = f"{ferry} push --server {s.url} --app b --key {w}/key --token tok-for-benchmarks-only --channel s --quiet"
        sync = f"{ferry} sync --server {s.url} --app b --channel s --trust {pub} --json --no-report"
        sh(f"{push} '{old}' --version 1")
        sh(f"{sync} --install {w}/inst")
        s.prepared(1)
        sh(f"{push} '{new}' --version 2")
        s.prepared(3)  # from v1, from nothing (v1's own three minus v1->v1)
        best = None
        for _ in range(rounds if timed else 1):
            discard(f"{w}/try")
            sh(f"cp -a {w}/inst {w}/try")
            os.sync()  # the copy's writeback is not the update's work
            t0 = time.monotonic()
            out = sh(f"/usr/bin/time -f '%M' {sync} --install {w}/try")
            wall = time.monotonic() - t0
            r = json.loads(out.stdout)
            rss = int(out.stderr.decode().strip().splitlines()[-1])
            assert r["version"] == "2", r
            if best is None or wall < best[1]:
                best = (r, wall, rss)
        sh(f"diff -r --no-dereference '{new}' {w}/try/current")
        # An up-to-date check afterwards: one conditional GET.
        idle = json.loads(sh(f"{sync} --install {w}/try").stdout)["bytes_downloaded"]
        return best[0]["bytes_downloaded"], best[1], best[2], best[0]["requests"], idle
    finally:
        s.stop()

def rsync_daemon(old, new, w):
    p = port()
    conf = os.path.join(w, "rsyncd.conf")
    open(conf, "w").write(f"use chroot = no\n[new]\npath = {new}\nread only = yes\n")
    d = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}", f"--port={p}", "--address=127.0.0.1"])
    wait_port(p)
    try:
        best = None
        for _ in range(rounds):
            discard(f"{w}/rs"); sh(f"cp -a '{old}' {w}/rs")
            os.sync()
            t0 = time.monotonic()
            sh(f"rsync -a --checksum --delete --fsync rsync://127.0.0.1:{p}/new/ {w}/rs/")
            wall = time.monotonic() - t0
            best = wall if best is None else min(best, wall)
        sh(f"diff -r --no-dereference '{new}' {w}/rs")
        return best
    finally:
        d.terminate(); d.wait()

n = lambda x: f"{x:,}" if isinstance(x, int) else x
bytes_rows, time_rows = [], []
for pair in pairs:
    old, new = (os.path.realpath(os.path.join(corpus, pair, x)) for x in ("old", "new"))
    with contextlib.nullcontext(tempfile.mkdtemp(prefix=f"{pair}-", dir=trash)) as w:
        whole = zsize(f"tar -C '{new}' -cf - . | zstd -3 -q -c")
        ch = changed(old, new)
        lst = os.path.join(w, "changed.txt")
        open(lst, "w").write("\n".join(os.path.relpath(c[1], new) for c in ch) + "\n")
        changed_z = zsize(f"tar -C '{new}' -cf - -T {lst} | zstd -3 -q -c")
        sh(f"cp -a '{old}' {w}/rs && rsync -a --checksum --delete --only-write-batch={w}/batch '{new}/' {w}/rs/")
        rs = zsize(f"zstd -3 -q -c {w}/batch"); discard(f"{w}/rs")
        cas = [casync(old, new, a, w) for a in (65536, 16384)] if have_casync else ["-", "-"]
        bnd = bound(old, new) if not skip_slow else "-"
        singles = ferry_update(old, new, w, ["--group-level", "0"], False)[0]
        groups = ferry_update(old, new, w, ["--group-references", "false"], False)[0]
        fb, fwall, frss, freq, idle = ferry_update(old, new, w, [], True)
        rwall = rsync_daemon(old, new, w)
    over = f"{fb / (1.1 * bnd + 8192):.2f}" if isinstance(bnd, int) else "-"
    bytes_rows.append(f"| {pair} | {n(whole)} | {n(changed_z)} | {n(rs)} | {n(cas[0])} | {n(cas[1])} | {n(bnd)} "
                      f"| {n(singles)} | {n(groups)} | **{n(fb)}** | {fb / rs:.3f} | {over} |")
    time_rows.append(f"| {pair} | {rwall:.2f} s | {fwall:.2f} s | {fwall / rwall:.2f} | {frss / 1024:.1f} MiB | {freq} | {idle} B |")
    print(bytes_rows[-1], file=sys.stderr); print(time_rows[-1], file=sys.stderr)

print("| pair | whole zstd-3 | changed files zstd-3 | rsync batch zstd-3 | casync 64K | casync 16K | patch-from bound "
      "| ferry, single chunks | ferry, groups without reference | ferry | ferry / rsync | ferry / (1.1 × bound + 8 KiB) |")
print("|---|" + "---|" * 11)
print("\n".join(bytes_rows))
print()
print("| pair | rsync daemon, wall | ferry sync, wall | ferry / rsync | ferry peak RSS | requests | up-to-date check (body bytes) |")
print("|---|---|---|---|---|---|---|")
print("\n".join(time_rows))
PY
