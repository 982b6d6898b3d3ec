#!/usr/bin/env bash
# Sizing figures for docs/operations.md: requests/s and bytes/s of one
# `ferry serve` pinned to ONE core (wrk on the other), and memory per open
# connection. Loopback only; every run is bounded (DURATION seconds).
#
#   scripts/sizing.sh [FERRY_BINARY]      (default: target/release/ferry)
#
# Needs wrk, python3, openssl, taskset (Debian: wrk, python3, openssl,
# util-linux). Test data is generated from a fixed seed.
set -euo pipefail

FERRY=${1:-target/release/ferry}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-2000}
for tool in wrk python3 openssl taskset pgrep curl; do
  command -v "$tool" >/dev/null || { echo "sizing: $tool is missing" >&2; exit 2; }
done
[ -x "$FERRY" ] || { echo "sizing: no ferry binary at $FERRY (make release)" >&2; exit 2; }
FERRY=$(realpath "$FERRY")

work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# An app: 48 MiB incompressible, 16 MiB of text-like data, 200 small files.
python3 - "$work/app" <<'PY'
import os, random, sys
r = random.Random(1)
d = sys.argv[1]
os.makedirs(d + "/lib", exist_ok=True)
os.makedirs(d + "/share", exist_ok=True)
with open(d + "/lib/engine.so", "wb") as f:
    f.write(r.randbytes(48 << 20))
words = [b"let", b"const", b"function", b"return", b"value", b"(", b")", b"{", b"}", b";\n"]
with open(d + "/share/bundle.js", "wb") as f:
    f.write(b" ".join(r.choice(words) for _ in range(3_000_000))[: 16 << 20])
for i in range(200):
    with open(f"{d}/share/page{i}.txt", "wb") as f:
        f.write(r.randbytes(2000 + i * 37))
PY

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

TOKEN=sizing-token-0123456789
start_server() { # extra args...
  taskset -c 0 "$FERRY" serve --data "$work/data" --listen 127.0.0.1:0 \
    --push-token "$TOKEN" --max-requests 100000 --max-connections 100000 "$@" \
    2> "$work/server.log" &
  pid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/^ferry serve: listening on //p' "$work/server.log")
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$work/server.log" >&2; exit 1; }
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

start_server
RUST_LOG=warn "$FERRY" keygen --secret-key "$work/pub.key" >/dev/null
FERRY_TOKEN=$TOKEN "$FERRY" push "$work/app" --server "$url" --app demo --version 1.0.0 \
  --key "$work/pub.key" --channel stable --quiet --json >/dev/null
"$FERRY" scan "$work/app" --list-chunks > "$work/ids.txt"
nchunks=$(wc -l < "$work/ids.txt")
etag=$(curl -sI "$url/v1/apps/demo/channels/stable" | tr -d '\r' | sed -n 's/^etag: //Ip')

cat > "$work/chunks.lua" <<LUA
local ids = {}
for line in io.lines("$work/ids.txt") do ids[#ids + 1] = line end
math.randomseed(1)
request = function()
  return wrk.format("GET", "/v1/chunks/" .. ids[math.random(#ids)])
end
LUA
# One batched fetch of every chunk (as a client installing from scratch).
python3 - "$work/ids.txt" "$work/fetch.body" <<'PY'
import sys
ids = b"".join(bytes.fromhex(l.strip()) for l in open(sys.argv[1]) if l.strip())
n = len(ids)
head = b"\xa1\x00" + (b"\x59" + n.to_bytes(2, "big") if n < 65536 else b"\x5a" + n.to_bytes(4, "big"))
open(sys.argv[2], "wb").write(head + ids)
PY
cat > "$work/fetch.lua" <<LUA
local f = io.open("$work/fetch.body", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/cbor"
f:close()
LUA

run() { # name, wrk args...
  local name=$1; shift
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@")
  local rps tps p99
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  tps=$(echo "$out" | awk '/^Transfer\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  # A figure of error answers is no figure: say so on the line.
  if echo "$out" | grep -q "Non-2xx"; then
    name="$name [ERRORS: $(echo "$out" | awk '/Non-2xx/ {print $NF}') non-2xx]"
  fi
  printf '%-44s %10s req/s %12s/s  p99 %8s  server RSS %s MiB\n' \
    "$name" "$rps" "$tps" "$p99" "$(( $(rss_kib) / 1024 ))"
}

echo "ferry sizing: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
echo "server pinned to core 0, wrk (1 thread, $CONNS connections, ${DURATION}s) on core 1;"
echo "app: $(du -sh "$work/app" | cut -f1), $nchunks distinct chunks"
run "agent check: GET record, If-None-Match (304)" -H "If-None-Match: $etag" \
  "$url/v1/apps/demo/channels/stable"
run "GET /v1/chunks/{id} (random chunk)" -s "$work/chunks.lua" "$url"
run "POST /v1/chunks/fetch (all $nchunks chunks)" -s "$work/fetch.lua" "$url/v1/chunks/fetch"
run "GET /healthz" "$url/healthz"

# Reference in the same run: nginx serving the very same chunk answers as
# static files (same paths, same bytes), pinned to the same core.
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  python3 - "${url#http://}" "$work/ids.txt" "$work/static/v1/chunks" <<'PY'
import http.client, os, sys
host, port = sys.argv[1].rsplit(":", 1)
out = sys.argv[3]
os.makedirs(out, exist_ok=True)
c = http.client.HTTPConnection(host, int(port))
for line in open(sys.argv[2]):
    i = line.strip()
    c.request("GET", "/v1/chunks/" + i)
    r = c.getresponse()
    open(os.path.join(out, i), "wb").write(r.read())
PY
  chmod -R a+rX "$work"
  nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    root $work/static;
    location /healthz { return 200 "ok\n"; }
  }
}
NGX
  taskset -c 0 "$NGINX" -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  npid=$!
  sleep 1
  saved=$pid; pid=$(pgrep -P "$npid" | head -n1)  # the worker
  run "reference: nginx static, same chunk answers" -s "$work/chunks.lua" "http://127.0.0.1:$nport"
  run "reference: nginx 'return 200'" "http://127.0.0.1:$nport/healthz"
  kill "$npid"; wait "$npid" 2>/dev/null || true
  pid=$saved
fi

# Memory per connection: idle keep-alive connections, each after one request.
base=$(rss_kib)
python3 - "${url#http://}" "$IDLE_CONNS" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)
    socks.append(s)
time.sleep(4)
PY
holder=$!
sleep 3
held=$(rss_kib)
wait "$holder" || true
echo "memory: $IDLE_CONNS idle HTTP/1.1 connections: $(( (held - base) * 1024 / IDLE_CONNS )) bytes each (RSS $((base / 1024)) -> $((held / 1024)) MiB)"
stop_server

# The same over TLS (keep-alive: handshakes amortised).
start_server --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
run "TLS: GET /v1/chunks/{id} (random chunk)" -s "$work/chunks.lua" "$url"
run "TLS: POST /v1/chunks/fetch (all chunks)" -s "$work/fetch.lua" "$url/v1/chunks/fetch"
run "TLS: agent check (304)" -H "If-None-Match: $etag" "$url/v1/apps/demo/channels/stable"
stop_server
