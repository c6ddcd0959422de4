//! `loadgen`: an HTTP/1.1 load generator for chat-completion endpoints, open-loop (constant
//! rate, latency from the intended send time) or closed-loop (max throughput).
//!
//! ```sh
//! loadgen --url http://127.0.0.1:8080/v1/chat/completions --rate 1000 --duration 10s --connections 32
//! loadgen --url http://127.0.0.1:8080/v1/chat/completions --concurrency 32 --duration 10s --json
//! loadgen --url http://127.0.0.1:8080/v1/chat/completions --rate 1000 --kind stream
//! ```
//!
//! Open loop: request `i` is due at `start + i / rate`; the connections take due requests in
//! order. When every connection is still busy at a request's due time (the server stalls), its
//! latency counts from the due time, so a stall is charged to every request it delayed
//! (no coordinated omission). When a connection was idle and only the timer woke it late
//! (tokio timers have 1 ms resolution), latency counts from the actual send.

mod conn;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hyper::body::Bytes;

use conn::{Conn, Target};
use report::{Recorder, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Non-streaming chat completion; latency is the whole response.
    Chat,
    /// Streaming chat completion; latency is the time to the first body byte.
    Stream,
}

/// Load an OpenAI-compatible chat endpoint over keep-alive HTTP/1.1 and report latency
/// percentiles.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// The endpoint, e.g. `http://127.0.0.1:8080/v1/chat/completions`.
    #[arg(long)]
    url: String,
    /// Open loop: requests per second, on a fixed schedule.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Open loop: connections sharing the schedule.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Closed loop: this many connections sending back to back (max throughput).
    #[arg(long)]
    concurrency: Option<usize>,
    /// How long to measure, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load applied before measuring starts (not recorded).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Kind::Chat)]
    kind: Kind,
    /// The `model` of the request body.
    #[arg(long, default_value = "gpt-4o")]
    model: String,
    /// `max_tokens` of the request body.
    #[arg(long, default_value_t = 16)]
    max_tokens: u32,
    /// An extra request header, `name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Runtime worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A label for the report (`direct`, `nginx`, `proxy`).
    #[arg(long, default_value = "")]
    label: String,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}` in `{text}`: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(run(&args))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn target(args: &Args) -> anyhow::Result<Target> {
    let (authority, path) = Target::parse(&args.url)?;
    let mut body = serde_json::json!({
        "model": args.model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": args.max_tokens,
    });
    if args.kind == Kind::Stream {
        body["stream"] = true.into();
    }
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("header `{h}` is not `name: value`"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Target {
        authority,
        path,
        body: Bytes::from(body.to_string()),
        headers,
    })
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let target = Arc::new(target(args)?);
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let (mode, workers) = match (args.rate, args.concurrency) {
        (Some(rate), _) => {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
            anyhow::ensure!(args.connections > 0, "--connections must be positive");
            let schedule = Arc::new(Schedule {
                start,
                interval_nanos: 1e9 / rate,
                next: AtomicU64::new(0),
            });
            let workers: Vec<_> = (0..args.connections)
                .map(|_| {
                    let window = (measure_from, end);
                    tokio::spawn(open_loop(target.clone(), schedule.clone(), window))
                })
                .collect();
            let mode = format!(
                "open-loop {rate} req/s over {} connections",
                args.connections
            );
            (mode, workers)
        }
        (None, Some(concurrency)) => {
            anyhow::ensure!(concurrency > 0, "--concurrency must be positive");
            let workers: Vec<_> = (0..concurrency)
                .map(|_| tokio::spawn(closed_loop(target.clone(), start, (measure_from, end))))
                .collect();
            (format!("closed-loop concurrency {concurrency}"), workers)
        }
        (None, None) => anyhow::bail!("give --rate (open loop) or --concurrency (closed loop)"),
    };
    let mut recorder = Recorder::default();
    for worker in workers {
        recorder.merge(worker.await?);
    }
    Ok(Report {
        mode,
        kind: format!("{:?}", args.kind).to_lowercase(),
        url: args.url.clone(),
        label: args.label.clone(),
        target_rate: args.rate,
        duration: args.duration,
        recorder,
    })
}

/// The open-loop schedule shared by all connections: request `i` is due at
/// `start + i * interval`.
#[derive(Debug)]
struct Schedule {
    start: Instant,
    interval_nanos: f64,
    next: AtomicU64,
}

impl Schedule {
    fn take(&self) -> Instant {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_nanos((i as f64 * self.interval_nanos) as u64)
    }
}

async fn open_loop(
    target: Arc<Target>,
    schedule: Arc<Schedule>,
    (measure_from, end): (Instant, Instant),
) -> Recorder {
    let mut conn = Conn::new(target);
    let mut recorder = Recorder::default();
    loop {
        let due = schedule.take();
        if due >= end {
            return recorder;
        }
        let behind = Instant::now() >= due;
        if !behind {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        // Behind schedule: the server kept every connection busy, so the wait is its doing.
        let from = if behind { due } else { sent };
        let result = conn.request().await;
        if due < measure_from {
            continue;
        }
        match result {
            Ok(t) => recorder.ok(t.first_byte - from, t.done - from),
            Err(kind) => recorder.error(&kind),
        }
    }
}

async fn closed_loop(
    target: Arc<Target>,
    start: Instant,
    (measure_from, end): (Instant, Instant),
) -> Recorder {
    let mut conn = Conn::new(target);
    let mut recorder = Recorder::default();
    tokio::time::sleep_until(start.into()).await;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return recorder;
        }
        let result = conn.request().await;
        if sent < measure_from {
            continue;
        }
        match result {
            Ok(t) => recorder.ok(t.first_byte - sent, t.done - sent),
            Err(kind) => {
                recorder.error(&kind);
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn the_schedule_spaces_requests_evenly() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            interval_nanos: 1e9 / 4000.0,
            next: AtomicU64::new(0),
        };
        let due: Vec<_> = (0..3).map(|_| schedule.take() - start).collect();
        assert_eq!(
            due,
            [0, 250, 500].map(Duration::from_micros).to_vec(),
            "{due:?}"
        );
    }
}
