#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each,
# default 60), starting from a seed corpus of real encodings written by
# tests/fuzz_regressions.rs. A crash is copied to fuzz/regressions/TARGET/
# (commit it: the workspace tests replay it on stable from then on) and
# fails the run. Needs a nightly toolchain and cargo-fuzz (installed with
# `cargo install cargo-fuzz` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ferry-fuzz$')}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly); running the stable corpus checks only" >&2
  exec cargo test --workspace --test fuzz_regressions
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

FERRY_FUZZ_CORPUS="$PWD/fuzz/corpus" cargo test --workspace --test fuzz_regressions -- write_seed_corpus >/dev/null

failed=()
for t in $targets; do
  echo "== fuzz $t for ${secs}s"
  mkdir -p "fuzz/corpus/$t"
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 20); then
    failed+=("$t")
  fi
  shopt -s nullglob
  for a in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/timeout-*; do
    mkdir -p "fuzz/regressions/$t"
    cp "$a" "fuzz/regressions/$t/"
    echo "fuzz: $t: kept $(basename "$a") in fuzz/regressions/$t/" >&2
    failed+=("$t")
  done
  shopt -u nullglob
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran ${secs}s without a failure"
