//! The official OpenAI Python SDK, unchanged, against the real proxy: starts the mocks and
//! `switchyard-proxy`, then runs `python3 -m pytest tests/python` with their addresses.
//!
//! Needs `python3 -m pip install -r tests/python/requirements.txt`; fails (never skips) without.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess};

/// The proxy's request body limit in this test; the SDK test sends twice as much.
const MAX_BODY_BYTES: usize = 64 * 1024;

const POLICY: &str = r#"
route chat {
  when model == "gpt-4o"
  use mock-a/gpt-4o
}

route embeddings {
  when model == "text-embedding-3-small"
  use mock-a/text-embedding-3-small
}

# Both candidates are scripted to answer 503 by the test that uses this route.
route doomed {
  when model == "doomed"
  use bad-a/gpt-4o
  failover to bad-b/gpt-4o
}

# The upstream is scripted to cut its stream; no failover candidate.
route cut {
  when model == "cut-stream"
  use cut/gpt-4o
}
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Fails with install instructions when the SDK or pytest is missing.
fn require_python_packages() {
    let requirements = python_dir().join("requirements.txt");
    let output = Command::new(python())
        .args(["-c", "import openai, pytest; print(openai.__version__)"])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            eprintln!(
                "openai SDK {}",
                String::from_utf8_lossy(&output.stdout).trim()
            );
        }
        Ok(output) => panic!(
            "the OpenAI SDK tests need the `openai` and `pytest` Python packages:\n  \
             {} -m pip install -r {}\n{}",
            python(),
            requirements.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "the OpenAI SDK tests need Python 3 ({e}); install python3 and then\n  \
             python3 -m pip install -r {}",
            requirements.display()
        ),
    }
}

#[test]
fn openai_python_sdk_against_the_proxy() {
    require_python_packages();

    let mock_a = MockProcess::named("mock-a");
    let bad_a = MockProcess::named("bad-a");
    let bad_b = MockProcess::named("bad-b");
    let cut = MockProcess::named("cut");

    let mut config = ConfigDir::new();
    config
        .add_provider(
            "mock-a",
            &mock_a.base_url(),
            &["gpt-4o", "text-embedding-3-small"],
        )
        .add_provider("bad-a", &bad_a.base_url(), &["gpt-4o"])
        .add_provider("bad-b", &bad_b.base_url(), &["gpt-4o"])
        .add_provider("cut", &cut.base_url(), &["gpt-4o"]);
    config.write_policy(POLICY);

    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: vec!["--max-body-bytes".into(), MAX_BODY_BYTES.to_string()],
            env: Vec::new(),
        },
    );

    let started = Instant::now();
    let output = Command::new(python())
        .args(["-m", "pytest", "-q", "-rfE", "--color=no"])
        .arg(python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SWITCHYARD_URL", proxy.base_url())
        .env("SWITCHYARD_MOCK_A", mock_a.url())
        .env(
            "SWITCHYARD_BAD_MOCKS",
            format!("{},{}", bad_a.url(), bad_b.url()),
        )
        .env("SWITCHYARD_CUT_MOCK", cut.url())
        .env("SWITCHYARD_MAX_BODY_BYTES", MAX_BODY_BYTES.to_string())
        // Never send loopback traffic through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("python3 runs");
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
