# Ferry: common tasks. `make demo` and `make test` are the two set-up
# commands of the README; both work on a fresh Debian/Ubuntu machine with
# Rust: both first run `deps`, which installs clang/libclang-dev for
# RocksDB's build when they are missing (apt, with sudo when not root).

CARGO ?= cargo

.PHONY: demo test test-integration build release fmt lint deps acceptance bench bench-pairs bench-scan sizing fuzz load clean

demo: deps
	$(CARGO) run --release --bin ferry -- demo

test: deps
	$(CARGO) test --workspace --all-targets

# nginx as a caching proxy in front of two servers (docs/operations.md);
# skipped with a message where nginx is absent (apt-get install nginx-light).
test-integration: deps
	$(CARGO) test --workspace --test integration_nginx -- --nocapture

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --bin ferry

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# System packages the build needs (RocksDB's bindings want libclang).
deps:
	@command -v clang >/dev/null && [ -n "$$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ] || \
	  { sudo=$$(command -v sudo || true); $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq clang libclang-dev; }

# The end-to-end acceptance check on a real release pair (fetched by
# ../shared/corpus/fetch-corpus.sh into $(FERRY_CORPUS)).
FERRY_CORPUS ?= ./corpus-data
acceptance:
	../shared/acceptance/e2e.sh $(FERRY_CORPUS)/numpy

# Bytes per update and scan speed on the release pairs (docs/benchmarks.md).
bench-pairs: release
	scripts/bench-pairs.sh $(FERRY_CORPUS)
	scripts/bench-scan.sh $(FERRY_CORPUS)

# Chunk + hash throughput of `ferry scan` against b3sum only (N rounds).
bench-scan: release
	scripts/bench-scan.sh $(FERRY_CORPUS)

bench:
	$(CARGO) bench --bench chunking --bench codecs

# Requests/s, bytes/s per core and memory per connection of `ferry serve`
# (wrk on loopback, bounded runs; docs/benchmarks.md). Needs wrk.
sizing: release
	scripts/sizing.sh target/release/ferry
# Every cargo-fuzz target for FUZZ_SECONDS (default 60) each, from a seed
# corpus of real encodings; crashes are kept in fuzz/regressions/ (nightly +
# cargo-fuzz; without nightly, the stable corpus checks only).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# 1,000 sync clients updating at once from one server on loopback (bounded:
# 15 min at most); prints throughput, p50/p99 latency, 503s and the server's
# peak RSS, and writes them to target/load-report.json.
LOAD_CLIENTS ?= 1000
load:
	FERRY_LOAD_CLIENTS=$(LOAD_CLIENTS) FERRY_LOAD_REPORT=$(CURDIR)/target/load-report.json \
	  $(CARGO) test --workspace --test load -- --ignored --nocapture load_1000

clean:
	$(CARGO) clean
