#!/usr/bin/env bash
# Start etcd and kube-apiserver on free 127.0.0.1 ports, for tests and manual poking.
#
#   tests/k8s/start-apiserver.sh [-d DIR] [-- COMMAND ARGS...]
#
# Everything lives in DIR (default: a new temp dir): etcd data, the generated serving
# certificate, the CA (ca.crt), a static admin token, the service-account key, logs, and
# DIR/kubeconfig (cluster admin through the static token, group system:masters).
#
# With a COMMAND: runs it with KUBECONFIG=DIR/kubeconfig and KUBE_APISERVER_URL set, then
# stops both servers and exits with the command's status.
# Without: prints `export KUBECONFIG=...` and waits; Ctrl-C (or SIGTERM) stops both servers.
# Either way, a trap kills etcd and kube-apiserver however the script ends.
#
# Environment:
#   SWITCHYARD_KUBE_APISERVER  the binary (default: whatever build-apiserver.sh prints)
#   SWITCHYARD_ETCD            etcd binary (default: etcd on PATH)
#   SWITCHYARD_K8S_KEEP=1      keep DIR afterwards (a temp DIR is removed otherwise)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dir="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[start-apiserver] $*" >&2; }

APISERVER="${SWITCHYARD_KUBE_APISERVER:-}"
[ -n "$APISERVER" ] || APISERVER="$("$here/build-apiserver.sh")"
ETCD="${SWITCHYARD_ETCD:-$(command -v etcd || true)}"
[ -x "$APISERVER" ] || { echo "no kube-apiserver at '$APISERVER'" >&2; exit 1; }
[ -x "$ETCD" ] || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }

temp_dir=0
if [ -z "$dir" ]; then
  dir="$(mktemp -d /tmp/switchyard-apiserver-XXXXXX)"
  temp_dir=1
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$temp_dir" = 1 ] && [ "${SWITCHYARD_K8S_KEEP:-0}" != 1 ]; then
    rm -rf "$dir"
  else
    log "kept $dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three distinct free loopback ports (held together, then released).
read -r client_port peer_port secure_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

token="$(openssl rand -hex 16)"
echo "$token,switchyard-admin,switchyard-admin,\"system:masters\"" >"$dir/tokens.csv"
[ -f "$dir/sa.key" ] || openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null

etcd_url="http://127.0.0.1:$client_port"
peer_url="http://127.0.0.1:$peer_port"
"$ETCD" --name=switchyard --data-dir="$dir/etcd" \
  --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
  --initial-cluster="switchyard=$peer_url" >"$dir/etcd.log" 2>&1 &
pids+=($!)

rm -f "$dir/certs/apiserver.crt"
"$APISERVER" --etcd-servers="$etcd_url" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$secure_port" --insecure-port=0 \
  --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-key-file="$dir/sa.key" --service-account-signing-key-file="$dir/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-cluster-ip-range=10.96.0.0/24 --endpoint-reconciler-type=none \
  >"$dir/kube-apiserver.log" 2>&1 &
pids+=($!)

url="https://127.0.0.1:$secure_port"
alive() {
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "a server exited; see $dir/*.log"; tail -20 "$dir"/*.log >&2; return 1; }
  done
}
# The generated serving certificate: the server's own, then the CA that signed it.
for _ in $(seq 600); do
  alive || exit 1
  [ -s "$dir/certs/apiserver.crt" ] && [ "$(grep -c 'BEGIN CERT' "$dir/certs/apiserver.crt")" -ge 2 ] && break
  sleep 0.2
done
awk '/BEGIN CERT/{n++} n==2' "$dir/certs/apiserver.crt" >"$dir/ca.crt"
[ -s "$dir/ca.crt" ] || { log "no serving certificate in $dir/certs"; exit 1; }

for _ in $(seq 600); do
  alive || exit 1
  if [ "$(curl -s --cacert "$dir/ca.crt" -H "Authorization: Bearer $token" "$url/readyz" || true)" = ok ]; then
    break
  fi
  sleep 0.2
done
[ "$(curl -s --cacert "$dir/ca.crt" -H "Authorization: Bearer $token" "$url/readyz")" = ok ] ||
  { log "not ready after 120 s; see $dir/kube-apiserver.log"; exit 1; }

cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: switchyard-test
  cluster:
    server: $url
    certificate-authority: $dir/ca.crt
users:
- name: switchyard-admin
  user:
    token: $token
contexts:
- name: switchyard-test
  context:
    cluster: switchyard-test
    user: switchyard-admin
    namespace: default
current-context: switchyard-test
EOF
log "ready at $url ($("$APISERVER" --version)); kubeconfig: $dir/kubeconfig"

if [ $# -gt 0 ]; then
  set +e
  KUBECONFIG="$dir/kubeconfig" KUBE_APISERVER_URL="$url" "$@"
  exit $?
fi
echo "export KUBECONFIG=$dir/kubeconfig"
log "Ctrl-C stops etcd and kube-apiserver"
while alive; do sleep 1; done
exit 1
