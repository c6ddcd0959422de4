#!/usr/bin/env bash
# Scale benchmark: a proxy serving N routes (issue #19). For humans, not CI.
#
#   tests/bench/routes.sh            # N=10000, release binaries built first
#   N=1000 KIND=rich NO_BUILD=1 tests/bench/routes.sh
#
# Routes are `when model == "mI" and header("x-team") == "tK"` / `use bench/gpt-4o`
# (KIND=plain, the default) or the same with a 70/30 split, failover on 5xx/429/p95(ttft) and
# a first-token timeout (KIND=rich), over PROVIDERS providers (default 100) at one mock. The
# proxy runs with one worker thread, no client keys. Reported: resident memory after the load
# (VmRSS) and, for requests matching the first, middle and last route and for one matching
# none (404), CPU µs per request and latency at RATE req/s (default 1000) for DURATION; then
# the size and time of /v1/models, one model, /admin/snapshot and /admin/targets.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-10000}
KIND=${KIND:-plain}
PROVIDERS=${PROVIDERS:-100}
RATE=${RATE:-1000}
DURATION=${DURATION:-10s}
BIN=${BIN_DIR:-"${CARGO_TARGET_DIR:-$ROOT/target}/release"}
log() { echo "--- $*" >&2; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin switchyard-proxy --bin switchyard-mock --bin loadgen)
fi

TMP=$(mktemp -d -t switchyard-routes-XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

"$BIN/switchyard-mock" --listen 127.0.0.1:0 --name bench --completion-tokens 16 > "$TMP/mock.out" 2> "$TMP/mock.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$TMP/mock.out" ]] && break; sleep 0.05; done
MOCK=$(sed -n 's/^listening on //p' "$TMP/mock.out")
[[ -n "$MOCK" ]] || { log "switchyard-mock did not start"; exit 1; }

CONFIG="$TMP/config"
mkdir -p "$CONFIG"
python3 - "$CONFIG" "$N" "$KIND" "$PROVIDERS" "$MOCK" <<'PY'
import sys
config, n, kind, providers, mock = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
with open(f"{config}/providers.yaml", "w") as f:
    for p in range(providers):
        f.write(f"""---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: p{p}
spec:
  type: openai-compatible
  baseUrl: http://{mock}/v1
  models:
    - name: gpt-4o
      pricing: {{ inputPerMillion: 2.5, outputPerMillion: 10 }}
    - name: gpt-4o-mini
      pricing: {{ inputPerMillion: 0.15, outputPerMillion: 0.6 }}
""")
lines = []
for i in range(n):
    p, q = f"p{i % providers}", f"p{(i + 1) % providers}"
    lines.append(f'route r{i} {{\n  when model == "m{i}" and header("x-team") == "t{i % 50}"')
    if kind == "rich":
        lines.append(f"  split {{ 70% {p}/gpt-4o 30% {q}/gpt-4o-mini }}")
        lines.append(f"  failover to {q}/gpt-4o when status in [429, 5xx] or p95(ttft) > 2s over 1m")
        lines.append("  timeout first_token 5s")
    else:
        lines.append(f"  use {p}/gpt-4o")
    lines.append("}")
policy = "\n".join("      " + l for l in "\n".join(lines).split("\n"))
with open(f"{config}/routes.yaml", "w") as f:
    f.write(f"""apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: scale
spec:
  policy: |
{policy}
""")
PY

PORT=$(free_port)
ADMIN=$(free_port)
start=$(date +%s.%N)
"$BIN/switchyard-proxy" --config "$CONFIG" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
  --allow-anonymous --threads 1 > "$TMP/proxy.log" 2>&1 &
PROXY=$!
PIDS+=($PROXY)
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://127.0.0.1:$ADMIN/readyz")" == 200 ]]; do
  kill -0 "$PROXY" 2>/dev/null || { cat "$TMP/proxy.log" >&2; exit 1; }
  sleep 0.05
done
ready=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
rss() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$PROXY/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$PROXY/stat"; }
log "$N $KIND routes: ready in ${ready} s, $(rss) MB resident"

echo "| N=$N ($KIND) | matches | CPU µs/req | p50 ms | p99 ms | errors |"
echo "|---|---|---:|---:|---:|---:|"
for which in first middle last none; do
  case $which in
    first) i=0 ;;
    middle) i=$((N / 2)) ;;
    last) i=$((N - 1)) ;;
    none) i=$N ;;
  esac
  before=$(ticks)
  "$BIN/loadgen" --url "http://127.0.0.1:$PORT/v1/chat/completions" --rate "$RATE" --duration "$DURATION" \
    --warmup 1s --connections 8 --model "m$i" --header "x-team: t$((i % 50))" --json > "$TMP/load.json" || true
  after=$(ticks)
  python3 - "$which" "r$i" "$before" "$after" "$(getconf CLK_TCK)" "$TMP/load.json" <<'PY'
import json, sys
which, route, before, after, tck, path = sys.argv[1:7]
r = json.load(open(path))
# loadgen counts 404s as errors, not in the achieved rate: a no-match run's requests are
# its errors (measured part only, scaled to warmup + duration like the others).
n = r["achieved_rate"] * (r["duration_s"] + 1) or r["errors"] * (r["duration_s"] + 1) / r["duration_s"]
cpu = (int(after) - int(before)) / int(tck) * 1e6 / n if n else float("nan")
lat = r["latency_ms"]
timing = f"{lat['p50']:.3f} | {lat['p99']:.3f}" if r["achieved_rate"] else "– | –"
print(f"| {which} | {route if which != 'none' else '(404)'} | {cpu:.0f} | {timing} | {r['errors']} |")
PY
done
echo
echo "Resident after the load: $(rss) MB; ready (read, compile, serve) in ${ready} s."
echo
echo "| endpoint | bytes | first request s | second request s |"
echo "|---|---:|---:|---:|"
for url in "http://127.0.0.1:$PORT/v1/models" "http://127.0.0.1:$PORT/v1/models/m$((N - 1))" \
  "http://127.0.0.1:$ADMIN/admin/snapshot" "http://127.0.0.1:$ADMIN/admin/targets"; do
  first=$(curl -s --noproxy '*' -o /dev/null -w '%{size_download} %{time_total}' "$url")
  second=$(curl -s --noproxy '*' -o /dev/null -w '%{time_total}' "$url")
  echo "| ${url#http://127.0.0.1:*/} | ${first% *} | ${first#* } | $second |"
done
