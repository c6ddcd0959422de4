//! The `switchyard` command for policy authors and CI pipelines.
//!
//! It reads the same YAML a user would `kubectl apply` (files or folders), compiles it with the
//! same compiler the operator and the standalone proxy use, and reports what it found. Exit
//! codes are part of the interface (pipelines branch on them):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: no errors (warnings allowed unless `--deny-warnings`); `explain` found a route; every `test` case passed |
//! | 1 | the policies or YAML have errors, `fmt --check` found text to reformat, or a `test` case failed (or none was found) |
//! | 2 | usage error or unreadable path |
//! | 3 | `explain`: no route matches the request (the proxy would answer 404) |

mod check;
mod explain;
mod fmt;
mod policy_test;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERRORS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_ROUTE: u8 = 3;

/// Check, explain and format Switchyard policies; print the CRDs.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES_HELP: &str = "Exit codes: 0 success, 1 errors found (or `fmt --check` would \
reformat, or a `test` case failed), 2 usage error, 3 `explain` found no matching route.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile LLMProvider, RoutePolicy and Budget YAML and print every diagnostic.
    ///
    /// The limits the proxy and the operator apply hold here too: files of at most 4 MiB
    /// (32 MiB together), YAML nested at most 64 deep with at most 100,000 nodes per
    /// document, policy text of at most 4 MiB, and
    /// conditions nesting `not` and parentheses at most 32 deep. Special files (FIFOs,
    /// devices) in a folder are skipped with a warning.
    Check {
        /// YAML files or folders (searched recursively for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Show which route, candidates and budgets a request would get, and why.
    Explain(explain::ExplainArgs),
    /// Rewrite the policy text inside YAML files in canonical form.
    Fmt {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; list files that would change and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
    /// Run the `RoutePolicyTest` cases found beside the policies (output like `cargo test`).
    ///
    /// Every case gives a request (model, headers, key, team, user, prompt tokens, stream,
    /// budgets to treat as exhausted) and what must happen (status, route, first target, the
    /// set of targets a split may pick, failover order, budgets that apply). A failing case is
    /// reported at the `file:line:column` of the broken expectation.
    Test {
        /// YAML files or folders holding the policies and their tests.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Replay recorded traffic (the proxy's access log) through a policy: shares, cost,
    /// budget exhaustion, 404s; with `--against`, the diff from the policy in force.
    Simulate(simulate::SimulateArgs),
    /// Print the CustomResourceDefinitions as YAML (what `kubectl apply -f -` takes).
    Crds,
}

/// Runs one command; `Err` means a usage or I/O problem (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let code = match cli.command {
        Command::Check {
            paths,
            deny_warnings,
        } => check::run(&paths, deny_warnings)?,
        Command::Explain(args) => explain::run(&args)?,
        Command::Fmt { paths, check } => fmt::run(&paths, check)?,
        Command::Test { paths } => policy_test::run(&paths)?,
        Command::Simulate(args) => simulate::run(&args)?,
        Command::Crds => {
            print!("{}", switchyard_crds::crd_documents());
            EXIT_OK
        }
    };
    Ok(ExitCode::from(code))
}
