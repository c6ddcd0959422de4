//! Sets `SWITCHYARD_REVISION` for the crate: `$SWITCHYARD_REVISION` when the environment has
//! it (image builds, where `.git` is not in the build context), else the commit `git
//! rev-parse HEAD` names, else `unknown`.
//!
//! It reruns only when that variable, `HEAD` or the branch HEAD points at changes: an ordinary
//! edit rebuilds nothing more, a commit rebuilds the crates that report the revision. With
//! `SWITCHYARD_REVISION` set (e.g. to `dev` while iterating), git is not consulted and commits
//! rebuild nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SWITCHYARD_REVISION");
    let given = std::env::var("SWITCHYARD_REVISION")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let revision = given.unwrap_or_else(|| {
        let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
        for file in git_files(&dir) {
            println!("cargo::rerun-if-changed={}", file.display());
        }
        git(&dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
    });
    println!("cargo::rustc-env=SWITCHYARD_REVISION={revision}");
}

/// The files whose change means HEAD names another commit: `HEAD` itself, the branch file it
/// points at and `packed-refs` (the ones that exist; a missing path would rerun every build).
fn git_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths = vec!["HEAD".to_string(), "packed-refs".to_string()];
    paths.extend(git(dir, &["symbolic-ref", "-q", "HEAD"]));
    paths
        .iter()
        .filter_map(|p| git(dir, &["rev-parse", "--git-path", p]))
        .map(|p| dir.join(p))
        .filter(|p| p.exists())
        .collect()
}

/// One line of `git`'s output in `dir`, or `None` (no git, not a repository, no commit).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let line = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !line.is_empty()).then_some(line)
}
