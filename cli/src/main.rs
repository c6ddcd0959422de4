//! `switchyard`: the policy author's command-line tool. See `switchyard --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: switchyard_cli::Cli = switchyard_build_info::parse();
    match switchyard_cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(switchyard_cli::EXIT_USAGE)
        }
    }
}
