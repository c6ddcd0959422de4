//! The real binaries as child processes on ephemeral ports, stopped when dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, bins::free_addr, http};

/// How long a proxy may take to answer `/readyz` with 200.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A child process that is interrupted (SIGINT), then killed, and always reaped on drop.
#[derive(Debug)]
struct Guard {
    child: Child,
    /// Where its stderr (and for the proxy stdout) goes.
    log: PathBuf,
    /// Holds the log file's folder.
    _logs: tempfile::TempDir,
}

impl Guard {
    fn spawn(mut command: Command, name: &str, pipe_stdout: bool) -> Guard {
        let logs = tempfile::Builder::new()
            .prefix("switchyard-log-")
            .tempdir()
            .expect("create a log folder");
        let log = logs.path().join(format!("{name}.log"));
        let file = File::create(&log).expect("create the log file");
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone().expect("clone the log file"))
        };
        command.stdin(Stdio::null()).stdout(stdout).stderr(file);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Guard {
            child,
            log,
            _logs: logs,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // Ask politely first so the process can flush; a stuck one is killed.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `switchyard-mock` (a fake OpenAI provider) on an ephemeral port.
#[derive(Debug)]
pub struct MockProcess {
    guard: Guard,
    addr: SocketAddr,
}

impl MockProcess {
    /// Starts `switchyard-mock --listen 127.0.0.1:0 ARGS...` and reads its address from the
    /// first stdout line (`listening on ADDR`).
    ///
    /// # Panics
    ///
    /// When the binary is missing or does not start; the panic shows its log.
    pub fn spawn(args: &[&str]) -> MockProcess {
        let mut command = Command::new(binary("switchyard-mock"));
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        let mut guard = Guard::spawn(command, "switchyard-mock", true);
        let stdout = guard.child.stdout.take().expect("stdout is piped");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
        else {
            panic!(
                "switchyard-mock {args:?} did not print `listening on ADDR` (got {line:?}); log:\n{}",
                guard.log_text()
            );
        };
        // Keep draining stdout so the mock never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        MockProcess { guard, addr }
    }

    /// A mock with `--name NAME`, sent back as `x-mock-server: NAME`.
    pub fn named(name: &str) -> MockProcess {
        MockProcess::spawn(&["--name", name])
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, the `baseUrl` of an `openai-compatible` provider.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// `POST /_mock/script` (faults are appended, `default` and `behaviour` replaced).
    ///
    /// # Panics
    ///
    /// When the mock rejects the script.
    pub fn script(&self, script: &serde_json::Value) {
        let response =
            http::post_json(self.addr, "/_mock/script", script).expect("the mock answers");
        assert_eq!(
            response.status,
            200,
            "script {script} rejected: {}",
            response.text()
        );
    }

    /// `POST /_mock/reset`: the start-up queue, default and behaviour; the log emptied.
    pub fn reset(&self) {
        let response = http::post_json(self.addr, "/_mock/reset", &serde_json::json!({}))
            .expect("the mock answers");
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// `GET /_mock/requests`: the API requests it received, oldest first.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let response = http::get(self.addr, "/_mock/requests").expect("the mock answers");
        match response.json().expect("the log is JSON") {
            serde_json::Value::Array(entries) => entries,
            other => panic!("the request log is not a list: {other}"),
        }
    }

    /// What it logged on stderr so far.
    pub fn log(&self) -> String {
        self.guard.log_text()
    }
}

/// Options of a proxy process beyond the config folder.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Extra flags, e.g. `["--max-body-bytes", "65536"]`.
    pub args: Vec<String>,
    /// Extra environment variables, e.g. provider keys named by `credentials: {env: ..}`.
    pub env: Vec<(String, String)>,
}

/// A running `switchyard-proxy --config DIR` on ephemeral client and admin ports, ready
/// (`/readyz` answered 200).
#[derive(Debug)]
pub struct ProxyProcess {
    guard: Guard,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl ProxyProcess {
    /// Starts the proxy on `config_dir` with default options.
    ///
    /// # Panics
    ///
    /// When the binary is missing, exits, or is not ready within [`READY_DEADLINE`]; the
    /// panic shows its log.
    pub fn spawn(config_dir: &Path) -> ProxyProcess {
        ProxyProcess::spawn_with(config_dir, &ProxyOptions::default())
    }

    /// Starts the proxy with extra flags and environment.
    ///
    /// # Panics
    ///
    /// As [`ProxyProcess::spawn`].
    pub fn spawn_with(config_dir: &Path, options: &ProxyOptions) -> ProxyProcess {
        let bin = binary("switchyard-proxy");
        let mut last_log = String::new();
        // A port picked by `free_addr` can be taken by someone else before the proxy binds it.
        for _ in 0..3 {
            let (listen, admin) = (free_addr(), free_addr());
            let mut command = Command::new(&bin);
            command
                .arg("--config")
                .arg(config_dir)
                .args(["--listen", &listen.to_string()])
                .args(["--admin-listen", &admin.to_string()])
                .args(&options.args)
                // No client keys in these configs: serve them as anonymous unless a test
                // sets `SWITCHYARD_ALLOW_ANONYMOUS=false`.
                .env("SWITCHYARD_ALLOW_ANONYMOUS", "true")
                .envs(options.env.iter().map(|(k, v)| (k, v)))
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                );
            let mut proxy = ProxyProcess {
                guard: Guard::spawn(command, "switchyard-proxy", false),
                listen,
                admin,
            };
            match proxy.wait_ready() {
                Ok(()) => return proxy,
                Err(Exit::Early) if proxy.log().to_lowercase().contains("in use") => {
                    last_log = proxy.log();
                }
                Err(why) => panic!(
                    "switchyard-proxy on {} {}; its log:\n{}",
                    config_dir.display(),
                    why.describe(),
                    proxy.log()
                ),
            }
        }
        panic!("switchyard-proxy could not bind free ports three times; last log:\n{last_log}");
    }

    fn wait_ready(&mut self) -> Result<(), Exit> {
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if self.guard.exited().is_some() {
                return Err(Exit::Early);
            }
            // Ready, and the client port bound too (pingora starts the admin service first):
            // the proxy says so once its port accepts. Not a connection of ours, which tests
            // of the connection cap would count.
            if let Ok(response) = http::get(self.admin, "/readyz")
                && response.status == 200
                && self
                    .log()
                    .contains(&format!("listening on {}", self.listen))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Exit::NotReady)
    }

    /// The client API address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The admin address (`/healthz`, `/readyz`, `/metrics`, `/admin/*`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `http://127.0.0.1:PORT/v1`, what an OpenAI SDK takes as `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// `http://127.0.0.1:ADMIN_PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.guard.exited().is_none()
    }

    /// What it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.guard.log_text()
    }

    /// The value of one series on `/metrics`, named as Prometheus prints it
    /// (`switchyard_connections_open{listener="client"}`); `None` when it is absent.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let metrics = http::get(self.admin, "/metrics").ok()?;
        metrics.text().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Waits up to `limit` until series `series` satisfies `holds`; panics with the metrics
    /// otherwise.
    pub fn wait_for_metric(&self, series: &str, limit: Duration, holds: impl Fn(f64) -> bool) {
        let start = Instant::now();
        while !self.metric(series).is_some_and(&holds) {
            if start.elapsed() > limit {
                let all = http::get(self.admin, "/metrics")
                    .map(|r| r.text())
                    .unwrap_or_default();
                panic!("{series} never reached the expected value within {limit:?}:\n{all}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Why a proxy did not become ready.
#[derive(Debug)]
enum Exit {
    Early,
    NotReady,
}

impl Exit {
    fn describe(&self) -> String {
        match self {
            Exit::Early => "exited before it was ready".into(),
            Exit::NotReady => format!(
                "did not answer /readyz with 200 within {}s",
                READY_DEADLINE.as_secs()
            ),
        }
    }
}
