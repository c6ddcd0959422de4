//! Many idle clients against a proxy with a low open-file limit (`ulimit -n 256`): the proxy
//! keeps descriptors for its admin port and upstreams, refuses the excess connections with
//! a fast 503 and serves again once the idle ones time out.
//!
//! A test binary of its own: it lowers this test process's soft limit for a moment (with
//! `prlimit`) so that the proxy it starts inherits it, then raises it back.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, http};

const SOFT_LIMIT: u32 = 256;
const IDLE_CLIENTS: usize = 300;

/// Sets this process's soft open-file limit (the hard limit is left as it is).
fn set_soft_nofile(soft: &str) {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .expect("read /proc/self/limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .expect("the open-file limit");
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit failed");
}

#[test]
fn idle_clients_cannot_exhaust_descriptors_under_a_low_ulimit() {
    let mock = MockProcess::named("fd-limit");
    let mut dir = ConfigDir::new();
    dir.add_provider("up", &mock.base_url(), &["gpt-4o"]);
    dir.write_policy("route chat {\n  when model == \"gpt-4o\"\n  use up/gpt-4o\n}\n");

    let original = std::fs::read_to_string("/proc/self/limits")
        .expect("limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .expect("the open-file limit");
    set_soft_nofile(&SOFT_LIMIT.to_string());
    let proxy = ProxyProcess::spawn_with(
        dir.path(),
        &ProxyOptions {
            args: vec!["--idle-timeout".into(), "2s".into()],
            env: Vec::new(),
        },
    );
    set_soft_nofile(&original);

    let idle: Vec<TcpStream> = (0..IDLE_CLIENTS)
        .filter_map(|_| {
            TcpStream::connect_timeout(&proxy.listen_addr(), Duration::from_secs(5)).ok()
        })
        .collect();
    // More than the proxy's cap (three quarters of 256) must have reached it.
    assert!(
        idle.len() > SOFT_LIMIT as usize * 3 / 4,
        "the test could open only {} clients",
        idle.len()
    );

    let health = http::get(proxy.admin_addr(), "/healthz").expect("the admin port answers");
    assert_eq!(health.status, 200);
    // The kernel accepts connections before the proxy does: wait for it to have seen them.
    proxy.wait_for_metric(
        "switchyard_connections_refused_total{listener=\"client\"}",
        Duration::from_secs(30),
        |refused| refused > 0.0,
    );
    // A client now gets an answer at once (a 503 while the slots are taken), not a hang.
    let answer = http::get(proxy.listen_addr(), "/v1/models").expect("an answer");
    assert!(
        answer.status == 200 || answer.status == 503,
        "{}",
        answer.text()
    );

    // Once the idle connections time out, requests are served again.
    let start = Instant::now();
    loop {
        let answer = http::get(proxy.listen_addr(), "/v1/models").expect("an answer");
        if answer.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still refused: {}",
            answer.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
}
