#!/usr/bin/env bash
# Heap allocations per request of a running switchyard-proxy, counted with perf uprobes on the
# allocator's entry points (needs root and perf: Debian's linux-perf). For humans, not CI.
#
#   tests/bench/allocs.sh PID ADMIN_ADDR [SECONDS]
#
# Run it while a steady load goes through the proxy (e.g. `tests/bench/run.sh` with a long
# DURATION, or loadgen by hand). It counts allocator calls (malloc, calloc, realloc,
# posix_memalign in glibc; mi_malloc_aligned, mi_zalloc_aligned, mi_realloc_aligned in a
# mimalloc build) for SECONDS (default 5) and divides by the requests the proxy finished in
# that time (from switchyard_requests_total on ADMIN_ADDR). Background work (timers, health
# checks) is included, so the figure is an upper bound.
set -euo pipefail
PID=${1:?usage: allocs.sh PID ADMIN_ADDR [SECONDS]}
ADMIN=${2:?usage: allocs.sh PID ADMIN_ADDR [SECONDS]}
SECS=${3:-5}
EXE=$(readlink -f "/proc/$PID/exe")
LIBC=$(awk '$6 ~ /libc\.so/ {print $6; exit}' "/proc/$PID/maps")

events=()
add_probe() { # binary, symbol
  local name
  perf probe -q -f -x "$1" --add "$2" 2>/dev/null || true
  # perf names the event GROUP:SYMBOL, the group after the binary's file name.
  name=$(perf probe -l 2>/dev/null | awk -v sym="$2" -v bin="$1" \
    '$0 ~ (" in " bin "\\)") && $1 ~ (":" sym "$") {print $1; exit}')
  if [[ -n "$name" ]]; then events+=(-e "$name"); fi
}
# (grep without -q reads all of nm's output: an early exit would fail the pipe under pipefail)
if nm "$EXE" 2>/dev/null | grep ' mi_malloc_aligned$' >/dev/null; then
  for sym in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
    add_probe "$EXE" "$sym"
  done
fi
for sym in malloc calloc realloc posix_memalign; do
  add_probe "$LIBC" "$sym"
done
((${#events[@]})) || { echo "no allocator probes could be added" >&2; exit 1; }

requests() {
  curl -s --noproxy '*' "http://$ADMIN/metrics" |
    awk '/^switchyard_requests_total/ {n += $NF} END {printf "%d\n", n}'
}
before=$(requests)
out=$(perf stat -x, "${events[@]}" -p "$PID" -- sleep "$SECS" 2>&1 >/dev/null)
after=$(requests)
python3 - "$before" "$after" <<EOF
import sys
before, after = int(sys.argv[1]), int(sys.argv[2])
counts = {}
for line in """$out""".splitlines():
    f = line.split(",")
    if len(f) > 2 and f[0].isdigit():
        counts[f[2]] = int(f[0])
n = after - before
total = sum(counts.values())
for k, v in sorted(counts.items()):
    print(f"{k}: {v}")
print(f"requests: {n}")
print(f"allocations per request: {total / n:.1f}" if n else "no requests finished")
EOF
