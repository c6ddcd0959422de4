//! Running the Python SDK suites in `tests/python` from cargo tests: check the packages are
//! installed (fail with the command that installs them, never skip) and run pytest against a
//! proxy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::ProxyProcess;

/// The Python interpreter: `$PYTHON`, else the repository's virtual environment
/// `.venv/bin/python` when it exists (`scripts/test` and `scripts/venv` create it), else
/// `python3`.
pub fn python() -> String {
    if let Ok(python) = std::env::var("PYTHON") {
        return python;
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// `tests/python`, where the suites and `requirements.txt` live.
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Panics with install instructions when pytest or one of `sdks` (`openai`, `anthropic`) is
/// missing.
pub fn require_packages(sdks: &[&str]) {
    let requirements = python_dir().join("requirements.txt");
    let script = format!(
        "import pytest, {0}; print(' '.join(m.__name__ + ' ' + m.__version__ for m in [{0}]))",
        sdks.join(", ")
    );
    match Command::new(python()).args(["-c", &script]).output() {
        Ok(output) if output.status.success() => {
            eprintln!("SDKs: {}", String::from_utf8_lossy(&output.stdout).trim());
        }
        Ok(output) => panic!(
            "the SDK tests need the {sdks:?} and `pytest` Python packages in {}:\n  \
             scripts/venv   (creates or updates {}, which the tests use)\n\
             or, for that interpreter,\n  {} -m pip install -r {}\n{}",
            python(),
            repo_root().join(".venv").display(),
            python(),
            requirements.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "the SDK tests need Python 3 ({} does not run: {e}); install python3, then run\n  \
             scripts/venv   (creates {} with {})",
            python(),
            repo_root().join(".venv").display(),
            requirements.display()
        ),
    }
}

/// Runs pytest on `files` (in `tests/python`) with `SWITCHYARD_URL` set to the proxy's
/// OpenAI base URL plus `env`; panics with pytest's output and the proxy's log on failure.
pub fn run(proxy: &ProxyProcess, files: &[&str], env: &[(&str, String)]) {
    let started = Instant::now();
    let mut command = Command::new(python());
    command
        .args(["-m", "pytest", "-q", "-rfExX", "--color=no"])
        .args(files.iter().map(|f| python_dir().join(f)))
        .current_dir(python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SWITCHYARD_URL", proxy.base_url())
        // Never send loopback traffic through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (name, value) in env {
        command.env(name, value);
    }
    eprintln!("pytest on {files:?} in {}", python_dir().display());
    let output = command.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("pytest took {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}\n--- switchyard-proxy log ---\n{}",
        output.status,
        proxy.log()
    );
    eprintln!("{stdout}");
}
