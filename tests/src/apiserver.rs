//! etcd + kube-apiserver on loopback for the Kubernetes end-to-end tests (crds, operator; see
//! tests/k8s/README.md): free ports, a temporary directory, a static admin token plus an
//! RBAC-only operator user, and a watchdog that cleans up when the test process dies.

use std::fmt::{Debug, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

const TOKEN: &str = "switchyard-test-token";
/// A second user without any group: it can do only what RBAC objects grant it.
pub const OPERATOR_USER: &str = "switchyard-operator";
const OPERATOR_TOKEN: &str = "switchyard-operator-token";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// etcd and kube-apiserver running in a temporary directory; both are killed on drop.
pub struct ApiServer {
    pub client: Option<Client>,
    pub kubeconfig: PathBuf,
    processes: Vec<(&'static str, Child, PathBuf)>,
    watchdog: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("kubeconfig", &self.kubeconfig)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

pub fn free_ports<const N: usize>() -> [u16; N] {
    // Hold all listeners at once so the ports are distinct, then release them.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

fn spawn(name: &'static str, program: &Path, args: &[String], dir: &Path) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
    (child, log)
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// `-----BEGIN CERTIFICATE-----` blocks of a PEM file, in order.
fn pem_certificates(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter_map(|part| {
            let start = part.find("-----BEGIN CERTIFICATE-----")?;
            part.ends_with(END).then(|| format!("{}\n", &part[start..]))
        })
        .collect()
}

impl ApiServer {
    pub async fn start(apiserver: &Path) -> Self {
        let etcd = std::env::var_os("SWITCHYARD_ETCD")
            .map(PathBuf::from)
            .or_else(|| which("etcd"))
            .expect("etcd not found: install etcd-server (tests/k8s/build-apiserver.sh does)");
        let dir = tempfile::Builder::new()
            .prefix("switchyard-apiserver-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let [client_port, peer_port, secure_port] = free_ports::<3>();

        // Static token (`token,user,uid,groups`), service-account key.
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{TOKEN},switchyard-admin,switchyard-admin,\"system:masters\"\n\
                 {OPERATOR_TOKEN},{OPERATOR_USER},{OPERATOR_USER}\n"
            ),
        )
        .expect("write token file");
        let status = Command::new("openssl")
            .args(["genrsa", "-out", "sa.key", "2048"])
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (install the openssl package)");
        assert!(status.success(), "openssl genrsa failed");

        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = [
            "--name=switchyard-test".to_string(),
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=switchyard-test={peer_url}"),
        ]
        .into();
        let apiserver_args: Vec<String> = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            format!("--secure-port={secure_port}"),
            "--insecure-port=0".to_string(),
            format!("--cert-dir={}", d.join("certs").display()),
            format!("--token-auth-file={}", d.join("tokens.csv").display()),
            "--authorization-mode=RBAC".to_string(),
            format!("--service-account-key-file={}", d.join("sa.key").display()),
            format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ),
            "--service-account-issuer=https://kubernetes.default.svc".to_string(),
            "--service-cluster-ip-range=10.96.0.0/24".to_string(),
            "--endpoint-reconciler-type=none".to_string(),
        ]
        .into();

        let mut processes = Vec::new();
        let (child, log) = spawn("etcd", &etcd, &etcd_args, d);
        processes.push(("etcd", child, log));
        let (child, log) = spawn("kube-apiserver", apiserver, &apiserver_args, d);
        processes.push(("kube-apiserver", child, log));

        // If this test process dies without running Drop (SIGKILL, abort), kill the servers
        // and remove the directory.
        let pids: Vec<String> = processes
            .iter()
            .map(|(_, c, _)| c.id().to_string())
            .collect();
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill -9 $3 2>/dev/null; \
                 sleep 1; rm -rf \"$2\"",
            )
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(d)
            .arg(pids.join(" "))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();

        let mut server = Self {
            client: None,
            kubeconfig: d.join("kubeconfig"),
            processes,
            watchdog,
            dir,
        };
        server.wait_ready(secure_port).await;
        server
    }

    fn check_running(&mut self) {
        for (name, child, log) in &mut self.processes {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{name} exited ({status}) during startup; last lines of {}:\n{}",
                    log.display(),
                    tail(log, 40)
                );
            }
        }
    }

    fn fail(&self, what: &str) -> ! {
        let mut msg = format!("{what}\n");
        for (name, _, log) in &self.processes {
            let _ = writeln!(msg, "--- last lines of {name} ({}):", log.display());
            let _ = writeln!(msg, "{}", tail(log, 30));
        }
        panic!("{msg}");
    }

    /// Waits for the generated serving certificate, writes a kubeconfig trusting its CA (the
    /// second certificate of `apiserver.crt`), then polls `/readyz`.
    async fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let crt = self.dir.path().join("certs/apiserver.crt");
        let ca = loop {
            self.check_running();
            let certs = pem_certificates(&std::fs::read_to_string(&crt).unwrap_or_default());
            if certs.len() >= 2 {
                break certs[1].clone();
            }
            if Instant::now() > deadline {
                self.fail("kube-apiserver wrote no serving certificate in time");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ca_path = self.dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca).expect("write ca.crt");
        std::fs::write(
            &self.kubeconfig,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: switchyard-test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: switchyard-admin
  user:
    token: {TOKEN}
contexts:
- name: switchyard-test
  context:
    cluster: switchyard-test
    user: switchyard-admin
    namespace: default
current-context: switchyard-test
",
                ca = ca_path.display()
            ),
        )
        .expect("write kubeconfig");
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
        let client = Client::try_from(config).expect("client");
        self.client = Some(client.clone());

        loop {
            self.check_running();
            let req = ::http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            let last = match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return,
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                self.fail(&format!(
                    "kube-apiserver not ready after {STARTUP_TIMEOUT:?}: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl ApiServer {
    /// A kubeconfig for [`OPERATOR_USER`] (no groups, only what RBAC grants it).
    pub fn operator_kubeconfig(&self) -> PathBuf {
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        let path = self.dir.path().join("operator.kubeconfig");
        std::fs::write(&path, admin.replace(TOKEN, OPERATOR_TOKEN)).expect("write kubeconfig");
        path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Reverse order: the API server first, then etcd.
        for (_, child, _) in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if std::env::var_os("SWITCHYARD_K8S_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("kept {}", kept.keep().display());
        }
    }
}
