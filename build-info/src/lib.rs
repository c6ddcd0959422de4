//! The version and source revision of this build, for `--version` and the
//! `switchyard_build_info` metric: one place so every binary reports them alike.
//!
//! The revision is the git commit the binaries were built from (set by `build.rs`; an image
//! build passes it as `SWITCHYARD_REVISION` because `.git` is not in its context), or
//! `unknown`.

/// The release version, the workspace's `version` (also the chart's `appVersion`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binaries were built from, or `unknown`.
pub const REVISION: &str = env!("SWITCHYARD_REVISION");

/// What `--version` prints after the binary's name: `0.1.0 (revision 93ea725c…)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SWITCHYARD_REVISION"),
    ")"
);

/// Parses the command line like [`clap::Parser::parse`], with [`VERSION_LINE`] as the
/// `--version` text (exits on `--help`, `--version` and usage errors, as `parse` does).
pub fn parse<P: clap::Parser>() -> P {
    let mut command = P::command().version(VERSION_LINE);
    let mut matches = command.get_matches_mut();
    P::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_version_and_revision() {
        assert!(!REVISION.is_empty());
        assert_eq!(VERSION_LINE, format!("{VERSION} (revision {REVISION})"));
        assert!(VERSION.split('.').count() == 3, "{VERSION}");
    }

    #[derive(Debug, clap::Parser)]
    #[command(name = "demo", version)]
    struct Demo {}

    #[test]
    fn version_flag_prints_the_version_line() {
        use clap::CommandFactory;
        let err = Demo::command()
            .version(VERSION_LINE)
            .try_get_matches_from(["demo", "--version"])
            .expect_err("--version exits");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(err.to_string(), format!("demo {VERSION_LINE}\n"));
    }
}
