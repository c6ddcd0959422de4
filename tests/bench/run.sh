#!/usr/bin/env bash
# Benchmark: latency added by switchyard-proxy over calling the upstream directly, next to a
# plain nginx proxy_pass hop, all on 127.0.0.1. For humans, not CI: it builds release binaries
# and loads the machine for a few minutes. Results: a markdown summary on stdout and, with the
# raw loadgen JSON, in $OUT (default target/bench/<time>/).
#
#   tests/bench/run.sh                  # full run: ~3 minutes of load
#   tests/bench/run.sh --quick          # 2 s per scenario, 1k req/s only: checks the script works
#   TARGETS="direct nginx" tests/bench/run.sh   # without the proxy
#
# Environment: DURATION (10s), WARMUP (2s), RATES ("1000 5000"), STREAM_RATE (1000),
# CONNECTIONS (32, open loop), CONCURRENCY (32, closed loop), LOADGEN_THREADS (1),
# TARGETS ("direct nginx proxy"), NO_BUILD=1 (use the binaries already built), BIN_DIR (where
# they are; default target/release),
# BUDGET=0 (run the proxy without its Budget document), AUTH=0 (no client key: the proxy runs
# with --allow-anonymous), OUT (results folder). Target `proxy-redis` is the proxy with its
# budget counters in a redis-server this script starts (Debian's redis-server). Target
# `proxy-latency` is the proxy with latency and error-rate triggers, a failover target and a
# hedge that never fires (2 s), so every request checks its window statistics; target
# `proxy-baseline` runs the plain policy on another build of the proxy, BASELINE_BIN (e.g. a
# commit before a change), for A/B runs, with BASELINE_ARGS (extra proxy flags) if set.
# Target `proxy-cache` is the proxy with `cache for 10m` on its route and the load generator sending
# `x-switchyard-cache: allow`: after the first request every one is a cache hit;
# `proxy-cache-redis` is the same with the cache in a redis-server this script starts.
# Targets `floor-forward` and `floor-relay` are pingora with no Switchyard code
# (proxy/examples/pingora_floor.rs): its own proxy phases, and the shape switchyard-proxy has
# (body read in request_filter, upstream over the pooled Connector); what the framework costs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RATES=${RATES:-"1000 5000"}
STREAM_RATE=${STREAM_RATE:-1000}
CONNECTIONS=${CONNECTIONS:-32}
CONCURRENCY=${CONCURRENCY:-32}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
TARGETS=${TARGETS:-"direct nginx proxy"}
BUDGET=${BUDGET:-1}
AUTH=${AUTH:-1}
BENCH_KEY=sk-bench-key
if [[ "${1:-}" == "--quick" ]]; then
  DURATION=2s WARMUP=500ms RATES=1000
fi
BIN=${BIN_DIR:-"${CARGO_TARGET_DIR:-$ROOT/target}/release"}
OUT=${OUT:-"$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

log() { echo "--- $*" >&2; }

# The process each target's CPU time is read from (nginx: its master, whose workers are children).
declare -A TPID
CLK_TCK=$(getconf CLK_TCK)
# utime+stime of a process and its direct children, in clock ticks.
cpu_ticks() {
  python3 - "$1" <<'PY'
import os, sys
pid, total = sys.argv[1], 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    # After the command name: state, ppid, ..., utime (14th field of the line), stime (15th).
    if p == pid or fields[1] == pid:
        total += int(fields[11]) + int(fields[12])
print(total)
PY
}

# --- cleanup: every process this script started, by pid -----------------------------------
TMP=$(mktemp -d -t switchyard-bench-XXXXXX)
chmod 755 "$TMP"  # nginx workers may run as another user
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # host:port, what
  local deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; do
    ((SECONDS < deadline)) || { log "$2 did not open $1"; return 1; }
    sleep 0.05
  done
}

# --- build -------------------------------------------------------------------------------
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release --bin switchyard-proxy --bin switchyard-mock --bin loadgen)
  if [[ "$TARGETS" == *floor* ]]; then
    (cd "$ROOT" && cargo build --release --example pingora_floor)
  fi
fi
for bin in switchyard-mock loadgen; do
  [[ -x "$BIN/$bin" ]] || { log "missing $BIN/$bin (run without NO_BUILD)"; exit 1; }
done

# --- upstream: switchyard-mock, no latency, 16-token answers ------------------------------
"$BIN/switchyard-mock" --listen 127.0.0.1:0 --name bench --completion-tokens 16 \
  > "$TMP/mock.out" 2> "$TMP/mock.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$TMP/mock.out" ]] && break; sleep 0.05; done
TPID[direct]=${PIDS[-1]}
MOCK=$(sed -n 's/^listening on //p' "$TMP/mock.out")
[[ -n "$MOCK" ]] || { log "switchyard-mock did not start"; cat "$TMP/mock.log" >&2; exit 1; }
declare -A URL
URL[direct]="http://$MOCK/v1/chat/completions"
log "mock at $MOCK"

# --- nginx: proxy_pass with a keep-alive upstream -----------------------------------------
start_nginx() {
  if ! command -v nginx >/dev/null; then
    log "installing nginx (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  fi
  local port dir="$TMP/nginx"
  port=$(free_port)
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream mock {
    server $MOCK;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$port;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
  PIDS+=($!)
  TPID[nginx]=$!
  wait_for_port "127.0.0.1:$port" nginx || { cat "$dir/logs/error.log" >&2; exit 1; }
  URL[nginx]="http://127.0.0.1:$port/v1/chat/completions"
  log "nginx at 127.0.0.1:$port"
}

# --- switchyard-proxy: one route, everything to the mock ----------------------------------
start_proxy() { # target name, extra proxy args...
  local name=$1
  shift
  local proxy_bin="$BIN/switchyard-proxy"
  [[ "$name" == proxy-baseline ]] && proxy_bin="${BASELINE_BIN:?set BASELINE_BIN for proxy-baseline}"
  [[ -x "$proxy_bin" ]] || { log "missing $proxy_bin"; exit 1; }
  local route="use bench/gpt-4o"
  if [[ "$name" == proxy-latency ]]; then
    route="use bench/gpt-4o
      failover to bench/gpt-4o-mini when status 5xx or p95(ttft) > 2s over 1m or error_rate > 50% over 30s
      hedge after 2s"
  fi
  local port admin dir="$TMP/$name-config" auth_args=()
  port=$(free_port)
  admin=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/providers.yaml" <<EOF
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: bench
spec:
  type: openai-compatible
  baseUrl: http://$MOCK/v1
  models:
    - name: gpt-4o
      pricing: { inputPerMillion: 2.5, outputPerMillion: 10 }
    - name: gpt-4o-mini
      pricing: { inputPerMillion: 0.15, outputPerMillion: 0.6 }
EOF
  cat > "$dir/routes.yaml" <<EOF
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: bench
spec:
  policy: |
    route all {
      $route
      $([[ "$name" == proxy-cache* ]] && echo "cache for 10m")
    }
EOF
  if [[ "$BUDGET" == 1 ]]; then
    # Quotas on, limits far above what the benchmark sends.
    cat > "$dir/budgets.yaml" <<EOF
apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  name: bench
spec:
  policy: |
    budget everything {
      for all
      limit 1000M tokens per minute, 1000M requests per minute
    }
EOF
  fi
  if [[ "$AUTH" == 1 ]]; then
    # Auth on: one client key, sent by the load generator to every target alike.
    cat > "$dir/client-keys.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: client-keys
  labels: { switchyard.dev/client-keys: "true" }
stringData:
  bench: '{"key": "$BENCH_KEY", "team": "bench"}'
EOF
  else
    auth_args=(--allow-anonymous)
  fi
  "$proxy_bin" --config "$dir" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    "${auth_args[@]}" "$@" > "$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  TPID[$name]=$!
  local deadline=$((SECONDS + 20))
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://127.0.0.1:$admin/readyz")" == 200 ]]; do
    ((SECONDS < deadline)) || { log "switchyard-proxy not ready"; cat "$TMP/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  URL[$name]="http://127.0.0.1:$port/v1/chat/completions"
  log "switchyard-proxy ($name) at 127.0.0.1:$port"
}

# --- pingora_floor: the framework with nothing of Switchyard's -----------------------------
start_floor() { # target name, mode
  local port bin="$BIN/examples/pingora_floor"
  [[ -x "$bin" ]] || { log "missing $bin (run without NO_BUILD)"; exit 1; }
  port=$(free_port)
  "$bin" "$2" "127.0.0.1:$port" "$MOCK" > "$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  TPID[$1]=$!
  wait_for_port "127.0.0.1:$port" "$1" || { cat "$TMP/$1.log" >&2; exit 1; }
  URL[$1]="http://127.0.0.1:$port/v1/chat/completions"
  log "pingora_floor $2 at 127.0.0.1:$port"
}

start_redis() {
  command -v redis-server >/dev/null || { log "installing redis-server"; apt-get install -y -qq redis-server >&2; }
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    > "$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "127.0.0.1:$REDIS_PORT" redis-server
}

for target in $TARGETS; do
  case $target in
    direct) ;;
    nginx) start_nginx ;;
    proxy) start_proxy proxy ;;
    proxy-latency) start_proxy proxy-latency ;;
    floor-forward) start_floor floor-forward forward ;;
    floor-relay) start_floor floor-relay relay ;;
    # shellcheck disable=SC2086 # BASELINE_ARGS is a list of words
    proxy-baseline) start_proxy proxy-baseline ${BASELINE_ARGS:-} ;;
    proxy-redis) start_redis; start_proxy proxy-redis --redis-url "redis://127.0.0.1:$REDIS_PORT/0" ;;
    proxy-cache) start_proxy proxy-cache ;;
    proxy-cache-redis)
      [[ -n "${REDIS_PORT:-}" ]] || start_redis
      start_proxy proxy-cache-redis --cache-redis-url "redis://127.0.0.1:$REDIS_PORT/1" ;;
    *) log "unknown target $target (direct, nginx, proxy, proxy-latency, floor-forward, floor-relay, proxy-baseline, proxy-redis, proxy-cache, proxy-cache-redis)"; exit 1 ;;
  esac
done

# --- scenarios: each runs against every target in turn -------------------------------------
run() { # scenario, target, loadgen args...
  local scenario=$1 target=$2
  shift 2
  [[ "$target" == proxy-cache* ]] && set -- "$@" --header "x-switchyard-cache: allow"
  log "$scenario → $target"
  local before after
  before=$(cpu_ticks "${TPID[$target]}")
  "$BIN/loadgen" --url "${URL[$target]}" --duration "$DURATION" --warmup "$WARMUP" \
    --threads "$LOADGEN_THREADS" --label "$target" --json --header "authorization: Bearer $BENCH_KEY" "$@" \
    > "$TMP/loadgen.json"
  after=$(cpu_ticks "${TPID[$target]}")
  # CPU per request: the target's utime+stime over the whole run (warmup included) divided by
  # the requests of the whole run, estimated at the achieved rate over warmup + duration.
  python3 - "$scenario" "$before" "$after" "$CLK_TCK" "$WARMUP" "$TMP/loadgen.json" >> "$RESULTS" <<'PY'
import json, re, sys
scenario, before, after, tck, warmup, path = sys.argv[1:7]
r = json.load(open(path))
n, unit = re.fullmatch(r"([0-9.]+)(ms|s|m)", warmup).groups()
warmup_s = float(n) * {"ms": 1e-3, "s": 1, "m": 60}[unit]
requests = r["achieved_rate"] * (r["duration_s"] + warmup_s)
r["scenario"] = scenario
r["cpu_us_per_request"] = (int(after) - int(before)) / int(tck) * 1e6 / requests if requests else None
print(json.dumps(r))
PY
}

for rate in $RATES; do
  for target in $TARGETS; do
    run "chat ${rate} req/s" "$target" --rate "$rate" --connections "$CONNECTIONS" --kind chat
  done
done
for target in $TARGETS; do
  run "stream TTFB ${STREAM_RATE} req/s" "$target" --rate "$STREAM_RATE" --connections "$CONNECTIONS" --kind stream
done
for target in $TARGETS; do
  run "max throughput c=${CONCURRENCY}" "$target" --concurrency "$CONCURRENCY" --kind chat
done

# --- summary -------------------------------------------------------------------------------
python3 - "$RESULTS" > "$OUT/summary.md" <<'EOF'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
keys = ["p50", "p90", "p99", "p99_9", "max"]
direct = {r["scenario"]: r for r in rows if r["label"] == "direct"}
nginx = {r["scenario"]: r for r in rows if r["label"] == "nginx"}

print("| scenario | target | achieved req/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | CPU µs/req |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    lat = r["latency_ms"]
    base = direct.get(r["scenario"])
    if base and r["label"] != "direct":
        added = [f"{lat[k] - base['latency_ms'][k]:+.3f}" for k in ("p50", "p99")]
    else:
        added = ["", ""]
    cells = [r["scenario"], r["label"], f"{r['achieved_rate']:.0f}", str(r["errors"])]
    cpu = r.get("cpu_us_per_request")
    cells += [f"{lat[k]:.3f}" for k in keys] + added + [f"{cpu:.0f}" if cpu is not None else ""]
    print("| " + " | ".join(cells) + " |")

tput = [r for r in rows if r["scenario"].startswith("max throughput")]
if tput:
    print()
    print("| max throughput | req/s | vs nginx |")
    print("|---|---:|---:|")
    for r in tput:
        ref = nginx.get(r["scenario"])
        ratio = f"{100 * r['achieved_rate'] / ref['achieved_rate']:.0f}%" if ref else ""
        print(f"| {r['label']} | {r['achieved_rate']:.0f} | {ratio} |")
EOF
cat "$OUT/summary.md"
log "raw results: $RESULTS"
