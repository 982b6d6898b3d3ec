#!/usr/bin/env bash
# Measures what docs/benchmarks.md reports, on the release pairs fetched by
# ../shared/corpus/fetch-corpus.sh: bytes a `ferry sync` downloads from old
# to new against the whole new version (zstd -3), the changed files only
# (zstd -3) and an rsync batch (zstd -3). Chunk+hash throughput against
# b3sum is scripts/bench-scan.sh (`make bench-pairs` runs both).
#
# Usage: scripts/bench-pairs.sh CORPUS_DIR [PAIR ...]   (from the project root)
# Needs: a release build (make release), zstd, rsync, python3.
set -euo pipefail
CORPUS=${1:?usage: scripts/bench-pairs.sh CORPUS_DIR [PAIR ...]}; shift
PAIRS=("$@"); [ ${#PAIRS[@]} -gt 0 ] || PAIRS=(numpy pandas pyarrow typescript ts-nightly)
F=$PWD/target/release/ferry
[ -x "$F" ] || { echo "no release build: run make release" >&2; exit 1; }
for t in zstd rsync python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done
W=$(mktemp -d); SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$W"' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
up() { for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
field() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
now() { date +%s.%N; }

# Changed or added files of NEW against OLD, as a tar stream.
changed_tar() {
  (cd "$2" && find . -type f -o -type l | sort | while read -r f; do
     cmp -s "$1/$f" "$f" 2>/dev/null || echo "$f"; done) > "$W/changed.txt"
  tar -C "$2" -cf - -T "$W/changed.txt"
}

echo "| pair | new version | whole zstd-3 | changed files zstd-3 | rsync batch zstd-3 | ferry sync | ferry / rsync |"
echo "|---|---|---|---|---|---|---|"
for p in "${PAIRS[@]}"; do
  OLD=$(cd "$CORPUS/$p/old" && pwd); NEW=$(cd "$CORPUS/$p/new" && pwd)
  size=$(du -sb "$NEW" | cut -f1)
  whole=$(tar -C "$NEW" -cf - . | zstd -3 -q -c | wc -c)
  changed=$(changed_tar "$OLD" "$NEW" | zstd -3 -q -c | wc -c)
  rm -rf "$W/rs"; cp -a "$OLD" "$W/rs"
  rsync -a --delete --only-write-batch="$W/batch" "$NEW/" "$W/rs/" >/dev/null
  rsyncb=$(zstd -3 -q -c "$W/batch" | wc -c); rm -f "$W/batch" "$W/batch.sh"

  rm -rf "$W/data" "$W/inst" "$W/key"; "$F" keygen --secret-key "$W/key" 2>/dev/null >"$W/pub"
  P=$(port); "$F" serve --data "$W/data" --listen 127.0.0.1:$P --push-token tok 2>"$W/server.log" & SERVER=$!
  up $P
  U=http://127.0.0.1:$P
  "$F" push "$OLD" --server $U --app b --version 1 --key "$W/key" --token tok --channel s --quiet >/dev/null
  "$F" sync --server $U --app b --channel s --install "$W/inst" --trust "$(cat "$W/pub")" --json >/dev/null
  "$F" push "$NEW" --server $U --app b --version 2 --key "$W/key" --token tok --channel s --quiet >/dev/null
  "$F" sync --server $U --app b --channel s --install "$W/inst" --trust "$(cat "$W/pub")" --json >"$W/s.json"
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=
  ferry=$(field "$W/s.json" bytes_downloaded)

  python3 - "$p" "$size" "$whole" "$changed" "$rsyncb" "$ferry" <<'PY'
import sys
p, size, whole, changed, rs, ferry = sys.argv[1], *map(int, sys.argv[2:7])
f = lambda n: f"{n:,}"
print(f"| {p} | {f(size)} | {f(whole)} | {f(changed)} | {f(rs)} | {f(ferry)} | {ferry/rs:.2f} |")
PY
done
