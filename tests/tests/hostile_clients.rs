//! Hostile clients against the real proxy binary: idle and dripping connections are closed
//! within the configured deadlines, connections beyond the cap are refused with a 503 while
//! the admin port keeps answering, request bodies held at once are capped, `Expect:
//! 100-continue` is answered, and pingora's own 400s carry an OpenAI-shaped body.
//!
//! Deadlines are set to one second here and every assertion allows several times that, so
//! a loaded machine does not make them flaky; what is asserted is that the connection ends
//! at all (without the limits these connections stay open for minutes).

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::http::{self, Response};
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess};

/// Longest wait for something that a one-second deadline should cause.
const CLOSE_WITHIN: Duration = Duration::from_secs(15);

fn args(list: &[&str]) -> ProxyOptions {
    ProxyOptions {
        args: list.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
    }
}

/// A config folder with one mock upstream serving `gpt-4o`.
fn config(mock: &MockProcess) -> ConfigDir {
    let mut dir = ConfigDir::new();
    dir.add_provider("up", &mock.base_url(), &["gpt-4o"]);
    dir.write_policy("route chat {\n  when model == \"gpt-4o\"\n  use up/gpt-4o\n}\n");
    dir
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    stream
}

/// How long until the server closes `stream` (reads give EOF or a reset), or `None` when it
/// is still open after `limit`. Bytes the server sends meanwhile are returned too.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (Some(start.elapsed()), received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (Some(start.elapsed()), received),
        }
    }
    (None, received)
}

fn read_answer(stream: &TcpStream) -> Response {
    let clone = stream.try_clone().expect("clone the stream");
    clone
        .set_read_timeout(Some(CLOSE_WITHIN))
        .expect("read timeout");
    http::read_response(BufReader::new(clone)).expect("a whole response")
}

fn chat_body(padding: usize) -> Vec<u8> {
    let mut body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes();
    body.resize(body.len() + padding, b' ');
    body
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let mock = MockProcess::named("idle");
    let dir = config(&mock);
    let mut options = args(&["--idle-timeout", "1s"]);
    options
        .env
        .push(("SWITCHYARD_ALLOW_ANONYMOUS".into(), "false".into()));
    let proxy = ProxyProcess::spawn_with(dir.path(), &options);

    // A connection that never sends a byte.
    let mut silent = connect(proxy.listen_addr());
    let (closed, _) = wait_closed(&mut silent, CLOSE_WITHIN);
    assert!(closed.is_some(), "a silent connection stayed open");

    // A keep-alive connection after a 401 answer.
    let mut kept = connect(proxy.listen_addr());
    let addr = proxy.listen_addr();
    write!(kept, "GET /v1/models HTTP/1.1\r\nhost: {addr}\r\n\r\n").expect("write");
    let answer = read_answer(&kept);
    assert_eq!(answer.status, 401, "{}", answer.text());
    let (closed, _) = wait_closed(&mut kept, CLOSE_WITHIN);
    assert!(
        closed.is_some(),
        "an idle keep-alive connection stayed open"
    );
}

#[test]
fn dripped_headers_are_cut_at_the_header_timeout() {
    let mock = MockProcess::named("drip-header");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn_with(
        dir.path(),
        &args(&["--header-timeout", "1s", "--idle-timeout", "60s"]),
    );
    let mut stream = connect(proxy.listen_addr());
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nx-slow: ")
        .expect("write");
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < CLOSE_WITHIN {
        // One more header byte every 200 ms: each single read is quick, the header never ends.
        if stream.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        let (gone, _) = wait_closed(&mut stream, Duration::from_millis(200));
        if gone.is_some() {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a header dripped for {CLOSE_WITHIN:?} kept the connection"
    );

    // Whole requests still pass on other connections.
    let ok = http::get(proxy.listen_addr(), "/v1/models").expect("answers");
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn dripped_bodies_get_408_at_the_body_timeout() {
    let mock = MockProcess::named("drip-body");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn_with(dir.path(), &args(&["--body-timeout", "1s"]));
    let addr = proxy.listen_addr();
    let stream = connect(addr);
    let mut writer = stream.try_clone().expect("clone");
    write!(
        writer,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{"
    )
    .expect("write the header");
    let dripping = std::thread::spawn(move || {
        for _ in 0..(CLOSE_WITHIN.as_millis() / 200) {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let answer = read_answer(&stream);
    assert_eq!(answer.status, 408, "{}", answer.text());
    let v = answer.json().expect("JSON");
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    drop(stream);
    let _ = dripping.join();
}

#[test]
fn connections_over_the_cap_are_refused_and_the_admin_port_still_answers() {
    let mock = MockProcess::named("cap");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn_with(dir.path(), &args(&["--max-connections", "4"]));
    // The proxy's own check that its port is bound is a connection too: let it come and go.
    let start = Instant::now();
    while !proxy.log().contains("listening on") && start.elapsed() < CLOSE_WITHIN {
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.wait_for_metric(OPEN, CLOSE_WITHIN, |n| n == 0.0);
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(proxy.listen_addr())).collect();
    proxy.wait_for_metric(OPEN, CLOSE_WITHIN, |n| n == 4.0);

    let refused_before = refused_total(&proxy);
    let refused = http::get(proxy.listen_addr(), "/v1/models").expect("an answer");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json().expect("JSON")["error"]["code"], "overloaded");
    let health = http::get(proxy.admin_addr(), "/healthz").expect("admin answers");
    assert_eq!(health.status, 200);
    assert_eq!(refused_total(&proxy), refused_before + 1.0);

    drop(idle);
    let start = Instant::now();
    loop {
        let answer = http::get(proxy.listen_addr(), "/v1/models").expect("an answer");
        if answer.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < CLOSE_WITHIN,
            "still refused after the idle connections closed: {}",
            answer.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const OPEN: &str = "switchyard_connections_open{listener=\"client\"}";
const REFUSED: &str = "switchyard_connections_refused_total{listener=\"client\"}";
const HELD: &str = "switchyard_request_body_bytes_held";

/// `switchyard_connections_refused_total` of the client listener now.
fn refused_total(proxy: &ProxyProcess) -> f64 {
    proxy
        .metric(REFUSED)
        .expect("the refused-connections counter")
}

#[test]
fn request_bodies_held_at_once_are_capped() {
    let mock = MockProcess::named("bodies");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn_with(
        dir.path(),
        &args(&[
            "--max-buffered-body-bytes",
            "1000000",
            "--max-body-bytes",
            "900000",
        ]),
    );
    let addr = proxy.listen_addr();
    let big = chat_body(800_000 - chat_body(0).len());
    let mut slow = connect(addr);
    write!(
        slow,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        big.len()
    )
    .expect("write the header");
    slow.write_all(&big[..1000]).expect("write a first part");

    // 800 kB are held for the first request: 300 kB more do not fit under 1 MB.
    proxy.wait_for_metric(HELD, CLOSE_WITHIN, |n| n == 800_000.0);
    let second = chat_body(300_000);
    let post_second = || {
        http::request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            &second,
        )
        .expect("an answer")
    };
    // Refused on its declared length, before any of its body is read.
    let mut stream = connect(addr);
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        second.len()
    )
    .expect("write the header");
    let refused = read_answer(&stream);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json().expect("JSON")["error"]["code"], "overloaded");

    slow.write_all(&big[1000..]).expect("write the rest");
    let first = read_answer(&slow);
    assert_eq!(first.status, 200, "{}", first.text());
    // The first request's bytes are given back once its handler is done.
    proxy.wait_for_metric(HELD, CLOSE_WITHIN, |n| n == 0.0);
    let again = post_second();
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mock = MockProcess::named("continue");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn(dir.path());
    let addr = proxy.listen_addr();
    let body = chat_body(0);
    let mut stream = connect(addr);
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .expect("write the header");
    let mut interim = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while !interim.windows(4).any(|w| w == b"\r\n\r\n") && start.elapsed() < CLOSE_WITHIN {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => interim.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let interim = String::from_utf8_lossy(&interim).into_owned();
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "no 100 Continue before the body: {interim:?}"
    );
    stream.write_all(&body).expect("write the body");
    let answer = read_answer(&stream);
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn malformed_http_gets_an_openai_shaped_400() {
    let mock = MockProcess::named("malformed");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn(dir.path());
    let addr = proxy.listen_addr();
    let long_path = format!("/v1/models/{}", "x".repeat(100_000));
    let requests = [
        "GET /v1/models HTTP/1.1\r\nthis is not a header\r\n\r\n".to_string(),
        format!("GET {long_path} HTTP/1.1\r\nhost: {addr}\r\n\r\n"),
    ];
    for request in requests {
        let mut stream = connect(addr);
        // The server may answer and close before the whole request is written.
        let _ = stream.write_all(request.as_bytes());
        let answer = read_answer(&stream);
        assert_eq!(answer.status, 400, "{}", answer.text());
        let v = answer.json().expect("a JSON body");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["code"], "invalid_http_request", "{v}");
    }
}

#[test]
fn client_values_are_echoed_bounded_in_errors_and_the_access_log() {
    let mock = MockProcess::named("echo");
    let dir = config(&mock);
    let proxy = ProxyProcess::spawn(dir.path());
    let marker = "Z".repeat(100_000);
    for body in [
        json!({"model": "gpt-4o", "stream": marker, "messages": []}),
        json!({"model": marker, "messages": []}),
    ] {
        let answer =
            http::post_json(proxy.listen_addr(), "/v1/chat/completions", &body).expect("an answer");
        assert!(
            answer.status == 400 || answer.status == 404,
            "{}",
            answer.status
        );
        assert!(
            answer.body.len() < 2_000,
            "{} bytes echoed",
            answer.body.len()
        );
    }
    // The access log line is written after the answer: give it a moment.
    let start = Instant::now();
    while proxy.log().matches("\"request\"").count() < 2 && start.elapsed() < CLOSE_WITHIN {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = proxy.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4_000, "a log line of {longest} bytes");
    assert!(!log.contains(&marker[..1_000]));
}
