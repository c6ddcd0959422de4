#!/usr/bin/env python3
"""Checks the Grafana dashboard charts/switchyard/dashboards/switchyard.json (Grafana itself is
not in the package registries, so its queries are checked against the real thing they read):

  1. lint: the JSON's shape (uid, schema version, unique panel ids, a grid that fits 24 columns
     without overlaps, every panel on the `${datasource}` variable with at least one PromQL
     target, only the variables the dashboard defines);
  2. data: starts three switchyard-mock providers (one healthy, one answering 503, one slow),
     `switchyard-proxy` on a config with failover, hedging, a cache, a budget and a dead OTLP
     collector, and a real Prometheus (Debian's `prometheus`) scraping the proxy every second;
     sends a short load; then runs every panel's PromQL (Grafana's variables substituted) and
     fails unless each returns at least one series.

Run: python3 tests/dashboard/check.py   (binaries from target/debug, or $SWITCHYARD_BIN_DIR;
`--lint` for step 1 only). Stdlib only.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "charts/switchyard/dashboards/switchyard.json")
BIN_DIR = os.environ.get("SWITCHYARD_BIN_DIR", os.path.join(ROOT, "target/debug"))
# Grafana's variables, as a query against this short run reads them.
VARIABLES = {"$route": ".*", "$__rate_interval": "1m", "$__range": "5m"}
LOAD_SECONDS = 12


def fail(message):
    print(f"dashboard check FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def lint(dash):
    problems = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dash:
            problems.append(f"missing `{key}`")
    defined = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    ids, cells = set(), {}
    queries = []
    for p in dash.get("panels", []):
        pid, title = p.get("id"), p.get("title", "")
        if pid in ids:
            problems.append(f"panel id {pid} repeated")
        ids.add(pid)
        g = p.get("gridPos", {})
        if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
            problems.append(f"`{title}`: bad gridPos {g}")
            continue
        for row in range(g["y"], g["y"] + g["h"]):
            for col in range(g["x"], g["x"] + g["w"]):
                if (row, col) in cells:
                    problems.append(f"`{title}` overlaps `{cells[(row, col)]}`")
                    break
                cells[(row, col)] = title
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"`{title}`: not on the ${{datasource}} variable")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"`{title}`: no query")
        for t in targets:
            expr = t.get("expr", "").strip()
            if not expr:
                problems.append(f"`{title}` {t.get('refId')}: empty expr")
                continue
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in defined and not var.startswith("__"):
                    problems.append(f"`{title}`: unknown variable ${var}")
            queries.append((title, t.get("refId"), expr))
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"`{title}`: no unit")
    if problems:
        fail("lint:\n  " + "\n  ".join(problems))
    print(f"lint: {len(dash['panels'])} panels, {len(queries)} queries, grid and variables ok")
    return queries


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline=30):
    start = time.time()
    while time.time() - start < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    fail(f"{url} never answered 200")


class Processes:
    def __init__(self, workdir):
        self.procs, self.workdir = [], workdir

    def start(self, name, args):
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        return p

    def log(self, name):
        with open(os.path.join(self.workdir, f"{name}.log")) as f:
            return f.read()[-4000:]

    def stop(self):
        for _, p in self.procs:
            p.terminate()
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


PROVIDER = """apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: {name}
spec:
  type: openai-compatible
  baseUrl: http://127.0.0.1:{port}/v1
  models:
{models}"""

POLICY = """apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: dashboard
spec:
  policy: |
    route chat {
      when model == "chat"
      use bad/m
      failover to good/m
    }
    route hedged {
      when model == "hedged"
      use slow/m
      failover to good/m
      hedge after 50ms
    }
    route cached {
      when model == "cached"
      use good/m
      cache for 10m
    }
    route capped {
      when model == "capped"
      use good/m
    }
    route doomed {
      when model == "doomed"
      use bad/m
    }
    route thrifty {
      when model == "thrifty"
      use good/m
    }
---
apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  name: dashboard
spec:
  policy: |
    budget capped {
      for route capped
      limit 20 requests per day
      warn at 50%
      on exhausted reject
    }

    budget thrifty {
      for route thrifty
      limit 10 requests per day
      on exhausted downgrade to good/mini
    }
"""


def write_config(folder, ports):
    docs = []
    for name in ("good", "bad", "slow"):
        models = "".join(
            f"    - name: {m}\n      pricing: {{ inputPerMillion: 2.5, outputPerMillion: 10 }}\n"
            for m in ("m", "mini")
        )
        docs.append(PROVIDER.format(name=name, port=ports[name], models=models))
    with open(os.path.join(folder, "providers.yaml"), "w") as f:
        f.write("---\n".join(docs))
    with open(os.path.join(folder, "routes.yaml"), "w") as f:
        f.write(POLICY)


def post(url, model, stream, headers=None):
    body = json.dumps(
        {
            "model": model,
            "stream": stream,
            "temperature": 0,
            "messages": [{"role": "user", "content": f"dashboard check {model}"}],
        }
    ).encode()
    req = urllib.request.Request(
        url + "/v1/chat/completions",
        data=body,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def load(url):
    """A short, mixed load: every route, streams and whole answers, on four threads."""
    counts, lock = {}, threading.Lock()
    end = time.time() + LOAD_SECONDS
    models = ["chat", "hedged", "cached", "capped", "doomed", "thrifty"]

    def worker(k):
        i = k
        while time.time() < end:
            model = models[i % len(models)]
            status = post(url, model, stream=(i % 2 == 0))
            with lock:
                counts[(model, status)] = counts.get((model, status), 0) + 1
            i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        out = json.load(r)
    if out.get("status") != "success":
        fail(f"Prometheus refused {expr}: {out}")
    return out["data"]["result"]


def live(queries):
    prometheus = shutil.which("prometheus")
    if not prometheus:
        fail("`prometheus` is not installed (Debian: apt-get install prometheus)")
    for b in ("switchyard-proxy", "switchyard-mock"):
        if not os.path.exists(os.path.join(BIN_DIR, b)):
            fail(f"{BIN_DIR}/{b} missing: cargo build --workspace --bins")
    work = tempfile.mkdtemp(prefix="switchyard-dashboard-")
    procs = Processes(work)
    try:
        ports = {n: free_port() for n in ("good", "bad", "slow", "listen", "admin", "prom")}
        mock = os.path.join(BIN_DIR, "switchyard-mock")
        procs.start("good", [mock, "--listen", f"127.0.0.1:{ports['good']}", "--name", "good",
                             "--ttft-ms", "20", "--tokens-per-second", "400"])
        procs.start("bad", [mock, "--listen", f"127.0.0.1:{ports['bad']}", "--name", "bad",
                            "--default-fault", '{"kind":"status","status":503}'])
        procs.start("slow", [mock, "--listen", f"127.0.0.1:{ports['slow']}", "--name", "slow",
                             "--latency-ms", "300"])
        config = os.path.join(work, "config")
        os.mkdir(config)
        write_config(config, ports)
        env = dict(os.environ, SWITCHYARD_ALLOW_ANONYMOUS="true", RUST_LOG="warn")
        # A collector nobody listens on: the dropped-spans panel must show it.
        args = [os.path.join(BIN_DIR, "switchyard-proxy"), "--config", config,
                "--listen", f"127.0.0.1:{ports['listen']}",
                "--admin-listen", f"127.0.0.1:{ports['admin']}",
                "--otel-endpoint", f"http://127.0.0.1:{free_port()}",
                "--otel-schedule-delay-ms", "200"]
        p = subprocess.Popen(args, env=env, stdout=open(os.path.join(work, "proxy.log"), "w"),
                             stderr=subprocess.STDOUT)
        procs.procs.append(("proxy", p))
        wait_http(f"http://127.0.0.1:{ports['admin']}/readyz")
        prom_config = os.path.join(work, "prometheus.yml")
        with open(prom_config, "w") as f:
            f.write(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: switchyard-proxy\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{ports['admin']}']}}]\n"
            )
        procs.start("prometheus", [prometheus, f"--config.file={prom_config}",
                                   f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                                   f"--web.listen-address=127.0.0.1:{ports['prom']}"])
        prom = f"http://127.0.0.1:{ports['prom']}"
        wait_http(f"{prom}/-/ready")
        counts = load(f"http://127.0.0.1:{ports['listen']}")
        print("load:", ", ".join(f"{m} {s}: {n}" for (m, s), n in sorted(counts.items())))
        # Three more scrapes after the load, so every rate has its last samples.
        time.sleep(3.5)
        empty = []
        for title, ref, expr in queries:
            q = expr
            for k, v in VARIABLES.items():
                q = q.replace(k, v)
            result = query(prom, q)
            print(f"  {len(result):3d} series  {title} [{ref}]")
            if not result:
                empty.append(f"{title} [{ref}]: {q}")
        if empty:
            fail("panels without data:\n  " + "\n  ".join(empty)
                 + "\nproxy log tail:\n" + procs.log("proxy"))
        print(f"data: every one of {len(queries)} queries returned series")
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    queries = lint(dash)
    if "--lint" not in sys.argv:
        live(queries)


if __name__ == "__main__":
    main()
