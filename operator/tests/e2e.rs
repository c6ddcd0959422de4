//! The operator end to end against a real kube-apiserver (1.20, see tests/k8s/README.md).
//!
//! Starts etcd + kube-apiserver, installs the CRDs, applies `examples/quickstart` into a
//! namespace, runs the `switchyard-operator` binary as a user that has only the RBAC rules of
//! operator/README.md, connects two subscribers to the control channel (HTTP/1.0 over TLS,
//! verified against a CA made at test time: read the event stream, POST acks) and checks status, rollout counts, propagation of an edit, a broken
//! policy keeping the old snapshot, a missing Secret, and graceful shutdown on SIGTERM.
//!
//! `SWITCHYARD_KUBE_APISERVER=$(bash tests/k8s/build-apiserver.sh) cargo test -p
//! switchyard-operator --test e2e -- --include-ignored`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use switchyard_crds::{LLMProvider, RoutePolicy};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use switchyard_tests::apiserver::{ApiServer, OPERATOR_USER, free_ports, tail};

const NS: &str = "e2e";
const TOKEN: &str = "e2e-control-token";
const WAIT: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ is inside the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// The operator process
// ---------------------------------------------------------------------------------------------

struct Operator {
    child: Child,
    log: PathBuf,
    control: SocketAddr,
    admin: SocketAddr,
}

impl Operator {
    fn start(kubeconfig: &Path, dir: &Path) -> Self {
        Self::start_as(kubeconfig, dir, "e2e-operator")
    }

    fn start_as(kubeconfig: &Path, dir: &Path, identity: &str) -> Self {
        let [control, admin] = free_ports::<2>();
        let control: SocketAddr = ([127, 0, 0, 1], control).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
        let token_file = dir.join("control-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
        // The control channel's certificate, in the layout of a mounted kubernetes.io/tls Secret.
        let tls_dir = dir.join("control-tls");
        std::fs::create_dir_all(&tls_dir).expect("tls dir");
        std::fs::write(tls_dir.join("tls.crt"), &pki().cert).expect("write tls.crt");
        std::fs::write(tls_dir.join("tls.key"), &pki().key).expect("write tls.key");
        let log = dir.join("operator.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"))
            .args([
                "--namespace",
                NS,
                "--lease-namespace",
                NS,
                "--identity",
                identity,
            ])
            .args(["--control-listen", &control.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .arg("--control-token-file")
            .arg(&token_file)
            .arg("--control-tls-dir")
            .arg(&tls_dir)
            .args(["--ping-interval", "1"])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,switchyard_operator=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("start switchyard-operator");
        Self {
            child,
            log,
            control,
            admin,
        }
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 60)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("operator exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(response) = http(self.admin, "GET /readyz", None, "").await
                && response.starts_with("HTTP/1.0 200")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "operator not ready:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test CA and the operator's certificate (for 127.0.0.1), made once per test run.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "switchyard e2e CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("key"))
            .expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &ca).expect("certificate");
        Pki {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    })
}

/// A TLS connection to the control channel at `addr`, verified against the test CA.
async fn tls_connect(
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki().ca.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// One HTTP/1.0 exchange with the admin port (plain HTTP): the whole response.
async fn http(
    addr: SocketAddr,
    request_line: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<String> {
    exchange(TcpStream::connect(addr).await?, request_line, token, body).await
}

/// One HTTP/1.0 exchange with the control channel (over TLS): the whole response.
async fn control(
    addr: SocketAddr,
    request_line: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<String> {
    exchange(tls_connect(addr).await?, request_line, token, body).await
}

/// Writes one HTTP/1.0 request and reads until the server closes the connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request_line: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<String> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{request_line} HTTP/1.0\r\nHost: operator\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// A control-channel subscriber standing in for a proxy pod
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Received {
    version: u64,
    hash: String,
    at: Instant,
    /// The envelope's `data:` line as sent.
    data: Arc<str>,
}

struct Subscriber {
    latest: watch::Receiver<Option<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    async fn connect(addr: SocketAddr, pod: &'static str) -> Self {
        Self::connect_with(addr, pod, 0).await
    }

    async fn connect_with(addr: SocketAddr, pod: &'static str, have: u64) -> Self {
        let mut stream = tls_connect(addr).await.expect("connect control channel");
        let request = format!(
            "GET /v1/snapshots/stream?have={have}&pod={pod} HTTP/1.0\r\nHost: operator\r\n\
             Authorization: Bearer {TOKEN}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await.expect("read").unwrap_or_default();
        assert!(status.contains(" 200 "), "stream refused: {status}");
        let (tx, latest) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut event = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(data) = line.strip_prefix("data: ")
                    && event == "snapshot"
                {
                    let at = Instant::now();
                    let envelope: Value = serde_json::from_str(data).expect("envelope JSON");
                    let version = envelope["version"].as_u64().expect("version");
                    let hash = envelope["snapshot"]["hash"]
                        .as_str()
                        .expect("hash")
                        .to_string();
                    let ack = json!({"pod": pod, "version": version, "hash": hash, "applied": true, "error": null});
                    let response = control(addr, "POST /v1/acks", Some(TOKEN), &ack.to_string())
                        .await
                        .expect("ack");
                    assert!(
                        response.starts_with("HTTP/1.0 204"),
                        "ack refused: {response}"
                    );
                    tx.send_replace(Some(Received {
                        version,
                        hash,
                        at,
                        data: data.into(),
                    }));
                } else if line.is_empty() {
                    event.clear();
                }
            }
        });
        Self { latest, task }
    }

    fn current(&self) -> Option<Received> {
        self.latest.borrow().clone()
    }

    async fn wait_for(&mut self, pred: impl Fn(&Received) -> bool) -> Received {
        let got = tokio::time::timeout(
            WAIT,
            self.latest.wait_for(|r| r.as_ref().is_some_and(&pred)),
        )
        .await
        .expect("subscriber did not get the expected version in time")
        .expect("subscriber stream ended");
        got.clone().expect("some")
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster set-up
// ---------------------------------------------------------------------------------------------

async fn install_crds(client: &Client) {
    // CEL rules (`x-kubernetes-validations`) exist from Kubernetes 1.25; an older server's
    // server-side apply refuses the unknown field, so it is removed there (as a client-side
    // `kubectl apply` or `helm install` would have it dropped; see crds/README.md).
    let version = client.apiserver_version().await.expect("/version");
    let cel = version
        .minor
        .trim_end_matches('+')
        .parse::<u32>()
        .is_ok_and(|m| version.major != "1" || m >= 25);
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in switchyard_crds::crds() {
        let name = crd.name_any();
        let mut doc = serde_json::to_value(&crd).expect("CRD JSON");
        if !cel {
            remove_key(&mut doc, "x-kubernetes-validations");
        }
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in time")
        .expect("CRD watch");
    }
}

fn remove_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, key)),
        _ => {}
    }
}

/// The Role of operator/README.md, bound to the operator's user.
async fn grant_operator_rbac(client: &Client) {
    let rules = json!([
        {"apiGroups": ["switchyard.dev"], "resources": ["llmproviders", "routepolicies", "budgets"], "verbs": ["list", "watch"]},
        {"apiGroups": ["switchyard.dev"], "resources": ["llmproviders/status", "routepolicies/status", "budgets/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]);
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "switchyard-operator", "namespace": NS},
        "rules": rules,
    }))
    .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "switchyard-operator", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "switchyard-operator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}],
    }))
    .expect("binding");
    Api::<Role>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
}

/// Creates every quickstart object in [`NS`].
async fn apply_quickstart(client: &Client) {
    let config = switchyard_crds::load_paths(&[workspace().join("examples/quickstart")])
        .unwrap_or_else(|e| panic!("examples/quickstart does not load:\n{e}"));
    let pp = PostParams::default();
    for p in config.providers {
        let mut o = p.object;
        o.metadata.namespace = Some(NS.into());
        Api::<LLMProvider>::namespaced(client.clone(), NS)
            .create(&pp, &o)
            .await
            .expect("create provider");
    }
    for p in config.route_policies {
        let mut o = p.object;
        o.metadata.namespace = Some(NS.into());
        Api::<RoutePolicy>::namespaced(client.clone(), NS)
            .create(&pp, &o)
            .await
            .expect("create route policy");
    }
    for p in config.budgets {
        let mut o = p.object;
        o.metadata.namespace = Some(NS.into());
        Api::<switchyard_crds::Budget>::namespaced(client.clone(), NS)
            .create(&pp, &o)
            .await
            .expect("create budget");
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Polls an object's status until `pred` holds; panics with the last status and the log.
async fn wait_status<K>(
    api: &Api<K>,
    name: &str,
    op: &Operator,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let obj = api.get(name).await.expect("get");
        let status = serde_json::to_value(&obj).expect("json")["status"].clone();
        if pred(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {what} not reached; status: {status:#}\noperator log:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of `switchyard_operator_reconciliations_total` over all kinds.
async fn reconciles(admin: SocketAddr) -> u64 {
    let metrics = http(admin, "GET /metrics", None, "")
        .await
        .expect("metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_operator_reconciliations_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: see tests/k8s/README.md"]
async fn operator_reconciles_publishes_and_reports_rollout_on_a_real_apiserver() {
    let Some(apiserver) = std::env::var_os("SWITCHYARD_KUBE_APISERVER") else {
        panic!(
            "SWITCHYARD_KUBE_APISERVER is not set: build the server with \
             `tests/k8s/build-apiserver.sh` and run \
             `SWITCHYARD_KUBE_APISERVER=$(bash tests/k8s/build-apiserver.sh) cargo test -p \
             switchyard-operator --test e2e -- --include-ignored` (see tests/k8s/README.md)"
        );
    };
    let started = Instant::now();
    let server = ApiServer::start(Path::new(&apiserver)).await;
    let client = server.client.clone().expect("ready");
    eprintln!("kube-apiserver ready after {:?}", started.elapsed());

    install_crds(&client).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    grant_operator_rbac(&client).await;
    apply_quickstart(&client).await;

    let mut op = Operator::start(&server.operator_kubeconfig(), server.dir.path());
    op.wait_ready().await;

    // The control channel wants the token.
    let refused = control(
        op.control,
        "GET /v1/snapshots/stream?have=0&pod=x",
        None,
        "",
    )
    .await
    .expect("request");
    assert!(refused.starts_with("HTTP/1.0 401"), "{refused}");
    let refused = control(op.control, "POST /v1/acks", Some("wrong"), "{}")
        .await
        .expect("request");
    assert!(refused.starts_with("HTTP/1.0 401"), "{refused}");
    // ... and TLS: a plaintext request gets no HTTP answer.
    let plain = http(
        op.control,
        "GET /v1/snapshots/stream?have=0&pod=x",
        Some(TOKEN),
        "",
    )
    .await
    .unwrap_or_default();
    assert!(!plain.starts_with("HTTP/"), "{plain}");

    let mut a = Subscriber::connect(op.control, "proxy-a").await;
    let mut b = Subscriber::connect(op.control, "proxy-b").await;
    let first = a.wait_for(|_| true).await;
    let first_b = b.wait_for(|r| r.version == first.version).await;
    assert_eq!(first.hash, first_b.hash);
    eprintln!(
        "both subscribers run version {} ({})",
        first.version,
        &first.hash[..12]
    );

    let policies: Api<RoutePolicy> = Api::namespaced(client.clone(), NS);
    let v1 = first.version as i64;
    let status = wait_status(&policies, "quickstart", &op, "Compiled=True, 2/2", |s| {
        condition(s, "Compiled").is_some_and(|c| c["status"] == "True")
            && s["snapshotVersion"] == v1
            && s["appliedPods"] == "2/2"
            && condition(s, "Applied").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(status["snapshotHash"], first.hash.as_str());
    let budgets: Api<switchyard_crds::Budget> = Api::namespaced(client.clone(), NS);
    wait_status(
        &budgets,
        "quickstart",
        &op,
        "Budget Compiled=True, 2/2",
        |s| {
            condition(s, "Compiled").is_some_and(|c| c["status"] == "True")
                && s["snapshotVersion"] == v1
                && s["appliedPods"] == "2/2"
        },
    )
    .await;
    let providers: Api<LLMProvider> = Api::namespaced(client.clone(), NS);
    wait_status(&providers, "mock-primary", &op, "Accepted=True, 2/2", |s| {
        condition(s, "Accepted").is_some_and(|c| c["status"] == "True") && s["appliedPods"] == "2/2"
    })
    .await;

    // Budget usage: both pods report their in-memory counters for the same key; the operator
    // sums them into the Budget's status and records an Event at each threshold crossing.
    let reset_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 60
        * 60
        + 60
        + 120; // the end of a window well ahead (the operator drops ended windows)
    let report = |pod: &str, spent: i64| {
        json!({"pod": pod, "version": first.version, "budgets": [{
            "name": "per-key", "origin": format!("{NS}/quickstart"), "scope": "key=alpha",
            "metric": "requests", "window": "minute", "spent": spent, "limit": 600,
            "remaining": 600 - spent, "reset_at": reset_at, "state": "ok", "source": "memory"
        }]})
        .to_string()
    };
    let post_usage = |body: String| async move {
        let response = control(op.control, "POST /v1/usage", Some(TOKEN), &body)
            .await
            .expect("usage");
        assert!(
            response.starts_with("HTTP/1.0 204"),
            "usage refused: {response}"
        );
    };
    let refused = control(
        op.control,
        "POST /v1/usage",
        Some("wrong"),
        &report("proxy-a", 1),
    )
    .await
    .expect("request");
    assert!(refused.starts_with("HTTP/1.0 401"), "{refused}");
    post_usage(report("proxy-a", 100)).await;
    post_usage(report("proxy-b", 50)).await;
    let status = wait_status(&budgets, "quickstart", &op, "usage 150 requests, ok", |s| {
        s["budgets"][0]["spent"] == "150 requests" && s["state"] == "ok"
    })
    .await;
    assert_eq!(status["budgets"][0]["name"], "per-key");
    assert_eq!(status["budgets"][0]["remaining"], "450 requests");
    assert!(status["budgets"][0]["resetAt"].is_string(), "{status:#}");
    post_usage(report("proxy-a", 300)).await;
    post_usage(report("proxy-b", 200)).await;
    wait_status(
        &budgets,
        "quickstart",
        &op,
        "usage 500 requests, warning",
        |s| s["budgets"][0]["spent"] == "500 requests" && s["state"] == "warning",
    )
    .await;
    post_usage(report("proxy-b", 250)).await; // still warning: no second Event
    wait_status(&budgets, "quickstart", &op, "usage 550 requests", |s| {
        s["budgets"][0]["spent"] == "550 requests"
    })
    .await;
    post_usage(report("proxy-b", 300)).await;
    wait_status(
        &budgets,
        "quickstart",
        &op,
        "usage 600 requests, exhausted",
        |s| s["budgets"][0]["spent"] == "600 requests" && s["state"] == "exhausted",
    )
    .await;
    let budget_events = |reason: &'static str| {
        let events: Api<Event> = Api::namespaced(client.clone(), NS);
        async move {
            events
                .list(&Default::default())
                .await
                .expect("list events")
                .items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Budget")
                })
                .map(|e| e.series.map_or(1, |s| s.count))
                .sum::<i32>()
        }
    };
    assert_eq!(
        budget_events("BudgetWarning").await,
        1,
        "one Event per crossing"
    );
    assert_eq!(budget_events("BudgetExhausted").await, 1);
    eprintln!("budget usage: status and threshold Events follow the pods' reports");

    // Edit the policy: both subscribers get the new version.
    let original = policies.get("quickstart").await.expect("get").spec.policy;
    let edited = original.replace("retry 1 backoff", "retry 2 backoff");
    assert_ne!(
        edited, original,
        "the quickstart policy has `retry 1 backoff`"
    );
    let applied_at = Instant::now();
    policies
        .patch(
            "quickstart",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policy": edited}})),
        )
        .await
        .expect("edit policy");
    let second = a.wait_for(|r| r.version > first.version).await;
    let second_b = b.wait_for(|r| r.version == second.version).await;
    let propagation = second.at.max(second_b.at) - applied_at;
    eprintln!(
        "PROPAGATION: apply -> both subscribers hold version {}: {:.1} ms",
        second.version,
        propagation.as_secs_f64() * 1000.0
    );
    assert_ne!(second.hash, first.hash);
    let v2 = second.version as i64;
    wait_status(&policies, "quickstart", &op, "version 2 applied 2/2", |s| {
        s["snapshotVersion"] == v2 && s["appliedPods"] == "2/2" && s["observedGeneration"] == 2
    })
    .await;

    // Break the policy: Compiled=False with line:column, nothing new is pushed.
    let broken = edited.replace("use mock-primary/mock-small", "use mock-primry/mock-small");
    assert_ne!(broken, edited);
    policies
        .patch(
            "quickstart",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policy": broken}})),
        )
        .await
        .expect("break policy");
    let status = wait_status(&policies, "quickstart", &op, "Compiled=False", |s| {
        condition(s, "Compiled").is_some_and(|c| c["status"] == "False")
    })
    .await;
    let compiled = condition(&status, "Compiled").expect("Compiled");
    let message = compiled["message"].as_str().expect("message");
    eprintln!("broken policy: {message}");
    let diag = &status["diagnostics"][0];
    let (line, column) = (
        diag["line"].as_i64().expect("line"),
        diag["column"].as_i64().expect("column"),
    );
    assert!(
        message.starts_with(&format!("{line}:{column}: error: ")),
        "{message}"
    );
    assert!(message.contains("mock-primry"), "{message}");
    assert_eq!(status["snapshotVersion"], v2, "the old snapshot stays live");
    assert_eq!(
        condition(&status, "Applied").expect("Applied")["status"],
        "False"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        a.current().map(|r| r.version),
        Some(second.version),
        "no new version pushed"
    );
    assert_eq!(
        b.current().map(|r| r.version),
        Some(second.version),
        "no new version pushed"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let recorded = events.list(&Default::default()).await.expect("list events");
    assert!(
        recorded
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("CompileFailed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("quickstart")),
        "no CompileFailed event: {:?}",
        recorded.items.iter().map(|e| &e.reason).collect::<Vec<_>>()
    );

    // Fix it again: the content equals the live version's, so no new version is needed and
    // the policy's status comes back to that version, rolled out.
    policies
        .patch(
            "quickstart",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policy": edited}})),
        )
        .await
        .expect("fix policy");
    wait_status(
        &policies,
        "quickstart",
        &op,
        "fixed: version 2 applied 2/2",
        |s| {
            condition(s, "Compiled").is_some_and(|c| c["status"] == "True")
                && condition(s, "Applied").is_some_and(|c| c["status"] == "True")
                && s["snapshotVersion"] == v2
                && s["observedGeneration"] == 4
        },
    )
    .await;
    assert_eq!(
        a.current().map(|r| r.version),
        Some(second.version),
        "same content, same version"
    );
    let third = second.clone();

    // A provider whose Secret is missing says so; creating the Secret fixes it.
    let keyed: LLMProvider = serde_json::from_value(json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "LLMProvider",
        "metadata": {"name": "keyed", "namespace": NS},
        "spec": {
            "type": "openai",
            "credentials": {"secretRef": {"name": "openai-key", "key": "apiKey"}},
            "models": [{"name": "gpt-4o", "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10}}]
        }
    }))
    .expect("provider");
    providers
        .create(&PostParams::default(), &keyed)
        .await
        .expect("create keyed");
    let status = wait_status(
        &providers,
        "keyed",
        &op,
        "Accepted=False SecretMissing",
        |s| {
            condition(s, "Accepted")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "SecretMissing")
        },
    )
    .await;
    let message = condition(&status, "Accepted").expect("Accepted")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("openai-key") && message.contains("apiKey"),
        "{message}"
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "openai-key", "namespace": NS},
        "stringData": {"apiKey": "sk-e2e-secret"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    wait_status(&providers, "keyed", &op, "Accepted=True", |s| {
        condition(s, "Accepted").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let latest = a.wait_for(|r| r.version > third.version).await;
    eprintln!("credentials change published version {}", latest.version);

    // Client keys: a labelled Secret becomes hashed entries in a new version (same content
    // hash); the plaintext key never travels.
    let plain = "sk-e2e-client-key-alpha";
    let hashed = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(plain.as_bytes()))
    };
    let client_keys: Secret = serde_json::from_value(json!({
        "metadata": {"name": "client-keys", "namespace": NS,
                     "labels": {"switchyard.dev/client-keys": "true"}},
        "stringData": {"alpha": format!("{{key: {plain}, team: support}}")}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &client_keys)
        .await
        .expect("create client keys");
    let keyed_version = a
        .wait_for(|r| r.version > latest.version && r.data.contains(&hashed))
        .await;
    assert!(!keyed_version.data.contains(plain), "plaintext key sent");
    assert_eq!(keyed_version.hash, latest.hash, "keys are not content");
    let envelope: Value = serde_json::from_str(&keyed_version.data).expect("json");
    assert_eq!(
        envelope["client_keys"],
        json!([{"id": "alpha", "sha256": hashed, "team": "support"}])
    );
    b.wait_for(|r| r.version == keyed_version.version).await;
    eprintln!("client keys published in version {}", keyed_version.version);
    let latest = keyed_version;

    // Propagation with a large policy: ROUTES routes in one more RoutePolicy (compiled by a
    // debug build here, so this is an upper bound), then removed again.
    let routes: usize = std::env::var("SWITCHYARD_E2E_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let latest = if routes == 0 {
        latest
    } else {
        let text: String = (0..routes)
            .map(|i| {
                format!("route r{i} {{\n  when header(\"x-r\") == \"{i}\"\n  use mock-primary/mock-small\n}}\n")
            })
            .collect();
        let bulk: RoutePolicy = serde_json::from_value(json!({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "RoutePolicy",
            "metadata": {"name": "bulk", "namespace": NS},
            "spec": {"policy": text, "priority": -1}
        }))
        .expect("bulk policy");
        let applied_at = Instant::now();
        policies
            .create(&PostParams::default(), &bulk)
            .await
            .expect("create bulk policy");
        let big = a.wait_for(|r| r.version > latest.version).await;
        let big_b = b.wait_for(|r| r.version == big.version).await;
        eprintln!(
            "PROPAGATION ({routes} more routes, {} KiB of policy): apply -> both subscribers hold version {}: {:.1} ms",
            text.len() / 1024,
            big.version,
            (big.at.max(big_b.at) - applied_at).as_secs_f64() * 1000.0
        );
        let log = std::fs::read_to_string(&op.log).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("published snapshot"))
            .skip(3)
        {
            eprintln!("  operator: {line}");
        }
        wait_status(&policies, "bulk", &op, "bulk Compiled=True, 2/2", |s| {
            condition(s, "Compiled").is_some_and(|c| c["status"] == "True")
                && s["appliedPods"] == "2/2"
                && s["snapshotVersion"] == big.version as i64
        })
        .await;
        policies
            .delete("bulk", &Default::default())
            .await
            .expect("delete bulk policy");
        let back = a.wait_for(|r| r.version > big.version).await;
        b.wait_for(|r| r.version == back.version).await;
        assert_eq!(
            back.hash, latest.hash,
            "same objects as before the bulk policy"
        );
        back
    };

    // No reconcile loop: once settled, nothing is reconciled while nothing changes (the
    // subscribers get a ping every second meanwhile).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = reconciles(op.admin).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = reconciles(op.admin).await;
    eprintln!("reconciliations so far: {after}");
    assert_eq!(
        before, after,
        "the operator reconciles while nothing changes"
    );

    // A second replica waits for the Lease and is not ready meanwhile.
    let standby_dir = tempfile::tempdir().expect("temp dir");
    let mut standby = Operator::start_as(
        &server.operator_kubeconfig(),
        standby_dir.path(),
        "e2e-standby",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let standby_ready = http(standby.admin, "GET /readyz", None, "")
        .await
        .expect("readyz");
    assert!(standby_ready.starts_with("HTTP/1.0 503"), "{standby_ready}");

    // Metrics and graceful shutdown.
    let metrics = http(op.admin, "GET /metrics", None, "")
        .await
        .expect("metrics");
    assert!(
        metrics.contains("switchyard_operator_snapshot_version"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_operator_connected_pods 2"),
        "{metrics}"
    );
    let pid = op.child.id().to_string();
    let term_at = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = loop {
        if let Some(status) = op.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "operator exit {exit}:\n{}", op.log_tail());
    eprintln!(
        "operator exited cleanly {:?} after SIGTERM",
        term_at.elapsed()
    );

    // The standby takes over (the leader released the Lease) and continues the versions.
    let takeover_at = Instant::now();
    standby.wait_ready().await;
    eprintln!(
        "standby became leader {:?} after SIGTERM",
        takeover_at.elapsed()
    );
    drop((a, b));
    let mut c = Subscriber::connect_with(standby.control, "proxy-c", latest.version).await;
    let next = c.wait_for(|_| true).await;
    assert!(
        next.version > latest.version,
        "{} after {}",
        next.version,
        latest.version
    );
    assert_eq!(next.hash, latest.hash, "same objects, same content");
    eprintln!("whole test {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Shadow rollout: a `mode: Shadow` RoutePolicy decided by two real proxies, never served
// ---------------------------------------------------------------------------------------------

/// A real `switchyard-proxy` in control-plane mode.
struct ControlledProxy {
    child: Child,
    log: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl ControlledProxy {
    fn start(op: &Operator, dir: &Path, pod: &str) -> Self {
        let [listen, admin] = free_ports::<2>();
        let listen: SocketAddr = ([127, 0, 0, 1], listen).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
        let own = dir.join(pod);
        std::fs::create_dir_all(&own).expect("proxy dir");
        let ca = own.join("ca.crt");
        std::fs::write(&ca, &pki().ca).expect("write ca");
        let token = own.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).expect("write token");
        let log = own.join("proxy.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(switchyard_tests::binary("switchyard-proxy"))
            .arg("--control-plane")
            .arg(format!("https://{}", op.control))
            .arg("--control-ca-file")
            .arg(&ca)
            .arg("--control-token-file")
            .arg(&token)
            .arg("--state-dir")
            .arg(&own)
            .args(["--pod-name", pod])
            .args(["--listen", &listen.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--threads", "1", "--grace-period-seconds", "1"])
            .env("SWITCHYARD_ALLOW_ANONYMOUS", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("start switchyard-proxy");
        Self {
            child,
            log,
            listen,
            admin,
        }
    }

    /// Waits until `/admin/shadow` answers: the proxy holds a snapshot with a shadow.
    async fn wait_shadow(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("proxy exited ({status}):\n{}", tail(&self.log, 40));
            }
            if let Ok(response) = switchyard_tests::http::get(self.admin, "/admin/shadow")
                && response.status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no shadow snapshot on the proxy:\n{}",
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn ask(&self, team: Option<&str>) -> String {
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        let mut headers = vec![("content-type", "application/json")];
        if let Some(team) = team {
            headers.push(("x-team", team));
        }
        let answer = switchyard_tests::http::request(
            self.listen,
            "POST",
            "/v1/chat/completions",
            &headers,
            body.to_string().as_bytes(),
        )
        .expect("an answer");
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer
            .header("x-switchyard-route")
            .unwrap_or("-")
            .to_string()
    }
}

impl Drop for ControlledProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: see tests/k8s/README.md"]
async fn a_shadow_route_policy_is_counted_by_two_proxies_into_its_status_without_serving() {
    let Some(apiserver) = std::env::var_os("SWITCHYARD_KUBE_APISERVER") else {
        panic!("SWITCHYARD_KUBE_APISERVER is not set: see tests/k8s/README.md");
    };
    let server = ApiServer::start(Path::new(&apiserver)).await;
    let client = server.client.clone().expect("ready");
    install_crds(&client).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    grant_operator_rbac(&client).await;

    let mock = switchyard_tests::MockProcess::named("upstream");
    let pp = PostParams::default();
    let provider: LLMProvider = serde_json::from_value(json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "LLMProvider",
        "metadata": {"name": "up", "namespace": NS},
        "spec": {"type": "openai-compatible", "baseUrl": mock.base_url(),
                 "models": [
                     {"name": "gpt-4o", "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10}},
                     {"name": "small", "pricing": {"inputPerMillion": 0.1, "outputPerMillion": 0.4}},
                 ]},
    }))
    .expect("provider");
    Api::<LLMProvider>::namespaced(client.clone(), NS)
        .create(&pp, &provider)
        .await
        .expect("create provider");
    let policies: Api<RoutePolicy> = Api::namespaced(client.clone(), NS);
    for (name, mode, policy) in [
        (
            "live",
            None,
            "route chat {\n  when model == \"gpt-4o\"\n  use up/gpt-4o\n}\n",
        ),
        (
            "candidate",
            Some("Shadow"),
            "route team-a {\n  when model == \"gpt-4o\" and header(\"x-team\") == \"a\"\n  use up/small\n}\n",
        ),
    ] {
        let mut spec = json!({"policy": policy});
        if let Some(mode) = mode {
            spec["mode"] = json!(mode);
        }
        let object: RoutePolicy = serde_json::from_value(json!({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "RoutePolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .expect("policy");
        policies.create(&pp, &object).await.expect("create policy");
    }

    let mut op = Operator::start(&server.operator_kubeconfig(), server.dir.path());
    op.wait_ready().await;
    let mut a = ControlledProxy::start(&op, server.dir.path(), "proxy-a");
    let mut b = ControlledProxy::start(&op, server.dir.path(), "proxy-b");
    a.wait_shadow().await;
    b.wait_shadow().await;

    // The live policy serves everything; the candidate would take team `a`'s requests.
    for (proxy, plain, team_a) in [(&a, 3, 2), (&b, 1, 2)] {
        for _ in 0..plain {
            assert_eq!(proxy.ask(None), "chat");
        }
        for _ in 0..team_a {
            assert_eq!(
                proxy.ask(Some("a")),
                "chat",
                "the shadow policy must not serve"
            );
        }
    }
    let status = wait_status(
        &policies,
        "candidate",
        &op,
        "shadow counts of both pods",
        |s| s["shadow"]["requests"] == 8 && s["shadow"]["pods"] == 2,
    )
    .await;
    let shadow = &status["shadow"];
    assert_eq!(shadow["sameTarget"], 4, "{status:#}");
    assert_eq!(shadow["wouldReject"], 0, "{status:#}");
    assert_eq!(
        shadow["changed"],
        json!([{"from": "chat → up/gpt-4o", "to": "team-a → up/small", "count": 4}]),
        "{status:#}"
    );
    assert_eq!(shadow["summary"], "4/8 changed");
    assert_eq!(
        condition(&status, "Compiled").map(|c| c["status"].clone()),
        Some(json!("True")),
        "{status:#}"
    );
    let live = policies.get("live").await.expect("get live");
    assert!(
        live.status.as_ref().is_none_or(|s| s.shadow.is_none()),
        "an Active policy has no shadow counts"
    );

    // The mock's request log: every call went to the live target, none to the shadow's.
    let models: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| r["body"]["model"].clone())
        .collect();
    assert_eq!(models.len(), 8, "{models:?}");
    assert!(models.iter().all(|m| m == "gpt-4o"), "{models:?}");

    // Promoting: `mode: Active` makes the candidate serve.
    policies
        .patch(
            "candidate",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "Active"}})),
        )
        .await
        .expect("promote");
    let deadline = Instant::now() + WAIT;
    while a.ask(Some("a")) != "team-a" {
        assert!(
            Instant::now() < deadline,
            "the promoted policy does not serve:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
