#!/usr/bin/env bash
# Propagation benchmark (issue #19): from `kubectl patch` of one RoutePolicy to every proxy
# serving the new snapshot, with N routes in the namespace, against a real kube-apiserver.
# For humans, not CI.
#
#   tests/bench/propagation.sh                  # N=10000 routes, 3 proxies, 20 edits
#   N=1000 PROXIES=2 EDITS=10 NO_BUILD=1 tests/bench/propagation.sh
#
# Runs etcd + kube-apiserver (tests/k8s/start-apiserver.sh), the CRDs, PROVIDERS providers
# (default 100), a RoutePolicy `scale` with N-1 routes of the form `when model == "mI" and
# header("x-team") == "tK"` / `use pJ/gpt-4o` and a RoutePolicy `edited` with one route; the
# real operator (release build, plain-HTTP control channel, no leader election) and PROXIES real
# proxies connected to it. Each edit patches `edited` (its model name) with kubectl and waits
# until every proxy's `switchyard_snapshot_version` passes the version it had; reported: each
# edit's time (and how much of it kubectl took, and the operator's compile and publish
# times from its log), p50, p99 and max, and the time of the first full snapshot. Edits are
# PAUSE seconds apart (default 1: the operator then writes every object's status).
#
# Needs: kubectl (scripts/venv charts/requirements.txt puts one in .venv), etcd and the
# kube-apiserver of tests/k8s/build-apiserver.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export N=${N:-10000} PROXIES=${PROXIES:-3} EDITS=${EDITS:-20} PROVIDERS=${PROVIDERS:-100}
export BIN=${BIN_DIR:-"${CARGO_TARGET_DIR:-$ROOT/target}/release"}
[[ -d "$ROOT/.venv/bin" ]] && export PATH="$ROOT/.venv/bin:$PATH"
command -v kubectl >/dev/null || { echo "kubectl not found: scripts/venv charts/requirements.txt" >&2; exit 1; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin switchyard-proxy --bin switchyard-operator)
fi

WORK=$(mktemp -d -t switchyard-propagation-XXXXXX)
trap '[[ "${KEEP:-0}" == 1 ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"' EXIT
cat > "$WORK/bench.py" <<'PY'
import json, os, socket, statistics, subprocess, sys, time, urllib.request

n, proxies_n, edits, providers = (int(os.environ[k]) for k in ("N", "PROXIES", "EDITS", "PROVIDERS"))
bins, root, work = os.environ["BIN"], os.environ["ROOT"], os.environ["WORK"]
NS = "bench"
PAUSE = float(os.environ.get("PAUSE", "1"))

def kubectl(*args, stdin=None):
    p = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def wait(what, cond, limit=120):
    start = time.time()
    while not cond():
        if time.time() - start > limit:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.005)

def version(admin):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("switchyard_snapshot_version "):
                    return int(float(line.split()[1]))
    except OSError:
        pass
    return 0

def policy(name, routes):
    body = "\n".join("      " + l for l in routes.split("\n"))
    return (f"apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata:\n  name: {name}\n"
            f"  namespace: {NS}\nspec:\n  policy: |\n{body}\n")

def edited(i):
    return policy("edited", f'route edited {{\n  when model == "edit-{i}"\n  use p0/gpt-4o\n}}')

for f in sorted(os.listdir(f"{root}/crds")):
    if f.endswith(".yaml"):
        # 1.20 knows no x-kubernetes-validations: the server drops them.
        kubectl("apply", "--validate=false", "-f", f"{root}/crds/{f}")
for crd in ("llmproviders", "routepolicies", "budgets"):
    kubectl("wait", "--for=condition=Established", f"crd/{crd}.switchyard.dev", "--timeout=60s")
kubectl("create", "namespace", NS)
docs = []
for p in range(providers):
    docs.append(f"apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: p{p}\n"
                f"  namespace: {NS}\nspec:\n  type: openai-compatible\n  baseUrl: http://127.0.0.1:9/v1\n"
                "  models:\n    - name: gpt-4o\n      pricing: { inputPerMillion: 2.5, outputPerMillion: 10 }\n")
kubectl("apply", "-f", "-", stdin="---\n".join(docs))
routes = "\n".join(f'route r{i} {{\n  when model == "m{i}" and header("x-team") == "t{i % 50}"\n'
                   f'  use p{i % providers}/gpt-4o\n}}' for i in range(n - 1))
scale = policy("scale", routes)
print(f"RoutePolicy `scale`: {n - 1} routes, {len(scale) / 1e6:.2f} MB of YAML", file=sys.stderr)
kubectl("apply", "--server-side", "-f", "-", stdin=scale)
kubectl("apply", "-f", "-", stdin=edited(0))

token = os.path.join(work, "token")
with open(token, "w") as f:
    f.write("bench-control-token")
control, op_admin = free_port(), free_port()
procs = []
try:
    started = time.time()
    procs.append(subprocess.Popen(
        [f"{bins}/switchyard-operator", "--namespace", NS, "--control-insecure", "--no-leader-election",
         "--control-listen", f"127.0.0.1:{control}", "--admin-listen", f"127.0.0.1:{op_admin}",
         "--control-token-file", token, "--log-json"],
        stdout=open(os.path.join(work, "operator.log"), "w"), stderr=subprocess.STDOUT))
    admins = []
    for i in range(proxies_n):
        listen, admin = free_port(), free_port()
        procs.append(subprocess.Popen(
            [f"{bins}/switchyard-proxy", "--control-plane", f"http://127.0.0.1:{control}",
             "--control-plane-insecure", "--control-token-file", token, "--pod-name", f"proxy-{i}",
             "--state-dir", os.path.join(work, f"state-{i}"), "--allow-anonymous", "--threads", "1",
             "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"proxy-{i}.log"), "w")))
        admins.append(admin)
    wait("every proxy serving a snapshot", lambda: all(version(a) > 0 for a in admins))
    first = time.time() - started
    print(f"first snapshot on all {proxies_n} proxies {first:.2f} s after the operator started",
          file=sys.stderr)
    # Steady state first: every object's status written for the first snapshot, kubectl's
    # discovery cache filled (as a user's is).
    wait("APPLIED on both RoutePolicies", lambda: all(
        f" {proxies_n}/{proxies_n} " in l for l in kubectl("-n", NS, "get", "routepolicies", "--no-headers")
        .strip().splitlines()))
    time.sleep(PAUSE)
    times = []
    for i in range(1, edits + 1):
        before = [version(a) for a in admins]
        t0 = time.time()
        kubectl("-n", NS, "patch", "routepolicy", "edited", "--type=merge", "-p",
                json.dumps({"spec": {"policy": edited(i).split("policy: |\n", 1)[1]
                                     .replace("\n      ", "\n").strip() + "\n"}}))
        t1 = time.time()
        wait(f"edit {i} on every proxy", lambda: all(version(a) > b for a, b in zip(admins, before)), 60)
        times.append((time.time() - t0) * 1000)
        published = [l for l in open(os.path.join(work, "operator.log")) if "published snapshot" in l]
        fields = json.loads(published[-1]).get("fields", {}) if published else {}
        print(f"edit {i:2}: {times[-1]:.0f} ms (kubectl {(t1 - t0) * 1000:.0f} ms; operator compile "
              f"{fields.get('compile_ms', '?')} ms, publish {fields.get('total_ms', '?')} ms)", file=sys.stderr)
        # Let the status updates of every object (each shows the new snapshot version) settle.
        time.sleep(PAUSE)
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    rss = []
    for p in procs:
        with open(f"/proc/{p.pid}/status") as f:
            rss.append(next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmRSS")))
    print(f"| {n} routes, {proxies_n} proxies, {edits} edits | p50 {statistics.median(times):.0f} ms "
          f"| p99 {p99:.0f} ms | max {times[-1]:.0f} ms | first snapshot {first:.2f} s "
          f"| operator {rss[0]} MB, proxies {', '.join(str(r) for r in rss[1:])} MB resident |")
except SystemExit:
    for name in ["operator.log"] + [f"proxy-{i}.log" for i in range(proxies_n)]:
        path = os.path.join(work, name)
        if os.path.exists(path):
            print(f"--- {name}", file=sys.stderr)
            print("".join(open(path).readlines()[-10:]), file=sys.stderr)
    raise
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
PY
export ROOT WORK
bash "$ROOT/tests/k8s/start-apiserver.sh" -- python3 "$WORK/bench.py"
