//! `switchyard simulate`: replay recorded traffic through a policy (and an old one) and report
//! where requests would go, what they would cost, which budgets would run out and when.
//!
//! The traffic is the proxy's access log: its lines are decision records
//! (`docs/decision-records.md`). Splits are decided with a low-discrepancy sequence of draws
//! (the golden-ratio sequence over the records' order), the same for both policies, so that a
//! 90/10 split sends as close to 90% of the records to its first arm as the count allows and an
//! unchanged policy changes nothing.

mod record;
mod replay;
mod report;

use std::io::BufRead as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::check::load_and_compile;
use crate::{EXIT_ERRORS, EXIT_OK};
use record::Line;
use replay::{Replay, accept_hashed_headers};
use report::{Moves, Summary};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The policy folder (or file) to replay the traffic through.
    policy: PathBuf,
    /// The proxy's access log (JSON lines); other log lines in it are skipped.
    #[arg(long, value_name = "LOG")]
    traffic: PathBuf,
    /// The policy in force today: report what changes from it to POLICY.
    #[arg(long, value_name = "OLD_DIR")]
    against: Option<PathBuf>,
    /// A table for people or JSON for tools.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// How often (in records) budget counters of finished windows are dropped.
const PRUNE_EVERY: u64 = 65_536;

/// 1/φ: successive multiples modulo 1 spread evenly over [0, 1).
const GOLDEN: f64 = 0.618_033_988_749_894_9;

pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<u8> {
    let Some(new) = compiled(&args.policy)? else {
        return Ok(EXIT_ERRORS);
    };
    let old = match &args.against {
        Some(dir) => match compiled(dir)? {
            Some(s) => Some(s),
            None => return Ok(EXIT_ERRORS),
        },
        None => None,
    };
    let file = std::fs::File::open(&args.traffic).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the traffic log {}: {e}",
            args.traffic.display()
        )
    })?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut new_replay = Replay::new(&new);
    let mut old_replay = old.as_ref().map(Replay::new);
    let mut moves = Moves::default();
    let mut stats = report::Stats::default();
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = match record::parse(&buf) {
            Ok(Line::Request(r)) => r,
            Ok(Line::Other) => {
                stats.skipped += 1;
                continue;
            }
            Err(e) => {
                if stats.malformed == 0 {
                    stats.first_malformed = Some(format!("line {line_no}: {e}"));
                }
                stats.malformed += 1;
                continue;
            }
        };
        if record.record > record::KNOWN_VERSION {
            stats.newer += 1;
        }
        stats.see(record.time);
        let draw = (stats.records as f64 * GOLDEN).fract();
        stats.records += 1;
        if stats.records % PRUNE_EVERY == 0 {
            new_replay.prune(record.time);
            if let Some(old) = &mut old_replay {
                old.prune(record.time);
            }
        }
        let fate = new_replay.step(&record, draw);
        if let Some(old_replay) = &mut old_replay {
            let before = old_replay.step(&record, draw);
            moves.count(before, fate);
        }
    }
    if let Some(first) = &stats.first_malformed {
        eprintln!(
            "warning: {} malformed line(s) skipped; the first, {first}",
            stats.malformed
        );
    }
    if stats.newer > 0 {
        eprintln!(
            "warning: {} record(s) of a newer schema than {} read as version {}",
            stats.newer,
            record::KNOWN_VERSION,
            record::KNOWN_VERSION
        );
    }
    let summary = Summary::new(
        args,
        &stats,
        &new_replay,
        old_replay.as_ref().map(|o| (o, &moves)),
    );
    match args.output {
        Output::Table => print!("{summary}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
    }
    Ok(EXIT_OK)
}

/// Compiles a policy folder for replay; `None` when it has errors (already reported).
fn compiled(path: &PathBuf) -> anyhow::Result<Option<switchyard_dsl::Snapshot>> {
    let Some((_, compiled)) = load_and_compile(std::slice::from_ref(path))? else {
        return Ok(None);
    };
    Ok(compiled.snapshot.map(accept_hashed_headers))
}
