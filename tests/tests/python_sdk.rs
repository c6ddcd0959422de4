//! The official OpenAI and Anthropic Python SDKs, unchanged, against the real proxy: each test
//! starts the mocks and `switchyard-proxy`, then runs `python3 -m pytest` on its files in
//! `tests/python` with their addresses.
//!
//! - `openai_python_sdk_against_the_proxy`: `test_openai_sdk.py`, OpenAI-type upstreams.
//! - `sdks_across_providers_against_the_proxy`: `test_providers.py`, the Anthropic SDK on
//!   `/v1/messages` and the OpenAI SDK on `/v1/chat/completions`, served by OpenAI-,
//!   Anthropic- and Gemini-type mocks, and failover across providers.
//!
//! Needs `python3 -m pip install -r tests/python/requirements.txt`; fails (never skips) without.

use switchyard_tests::config::{ANTHROPIC, GEMINI};
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, pytest};

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

#[test]
fn openai_python_sdk_against_the_proxy() {
    pytest::require_packages(&["openai"]);

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

    pytest::run(
        &proxy,
        &["test_openai_sdk.py"],
        &[
            ("SWITCHYARD_MOCK_A", mock_a.url()),
            (
                "SWITCHYARD_BAD_MOCKS",
                format!("{},{}", bad_a.url(), bad_b.url()),
            ),
            ("SWITCHYARD_CUT_MOCK", cut.url()),
            ("SWITCHYARD_MAX_BODY_BYTES", MAX_BODY_BYTES.to_string()),
        ],
    );
}

/// The environment variable the proxy reads the Anthropic and Gemini mocks' key from.
const UPSTREAM_KEY_ENV: &str = "SWITCHYARD_TEST_UPSTREAM_KEY";

const PROVIDERS_POLICY: &str = r#"
# One upstream of each wire format.
route via-openai {
  when model == "via-openai"
  use oai/gpt-4o
}

route claude {
  when model == "claude-mock"
  use claude/claude-mock
}

route gemini {
  when model == "gemini-2.0-flash"
  use gem/gemini-2.0-flash
}

# `flaky` (OpenAI type) is scripted to answer 503; the Anthropic-type mock takes over.
route cross-failover {
  when model == "cross-failover"
  use flaky/gpt-4o
  failover to claude/claude-mock
}

# `busy` (Anthropic type) is scripted per test; only classified overload and rate limits
# fail over, to Gemini.
route classified-failover {
  when model == "classified-failover"
  use busy/claude-mock
  failover to gem/gemini-2.0-flash when overloaded or rate_limited
}

# `gem-busy` (Gemini type) is scripted per test; classified errors fail over to Anthropic.
route gemini-failover {
  when model == "gemini-failover"
  use gem-busy/gemini-2.0-flash
  failover to claude/claude-mock when overloaded or rate_limited
}
"#;

#[test]
fn sdks_across_providers_against_the_proxy() {
    pytest::require_packages(&["openai", "anthropic"]);

    // The Anthropic and Gemini mocks answer as the real APIs do without credentials, so the
    // proxy must send `x-api-key` + `anthropic-version` and `x-goog-api-key`.
    let oai = MockProcess::named("oai");
    let flaky = MockProcess::named("flaky");
    let claude = MockProcess::spawn(&["--name", "claude", "--require-auth"]);
    let busy = MockProcess::spawn(&["--name", "busy", "--require-auth"]);
    let gem = MockProcess::spawn(&["--name", "gem", "--require-auth"]);
    let gem_busy = MockProcess::spawn(&["--name", "gem-busy", "--require-auth"]);

    let mut config = ConfigDir::new();
    config
        .add_provider("oai", &oai.base_url(), &["gpt-4o"])
        .add_provider("flaky", &flaky.base_url(), &["gpt-4o"])
        .add_typed_provider(
            "claude",
            ANTHROPIC,
            &claude.url(),
            &["claude-mock"],
            Some(UPSTREAM_KEY_ENV),
        )
        .add_typed_provider(
            "busy",
            ANTHROPIC,
            &busy.url(),
            &["claude-mock"],
            Some(UPSTREAM_KEY_ENV),
        )
        .add_typed_provider(
            "gem",
            GEMINI,
            &gem.url(),
            &["gemini-2.0-flash"],
            Some(UPSTREAM_KEY_ENV),
        )
        .add_typed_provider(
            "gem-busy",
            GEMINI,
            &gem_busy.url(),
            &["gemini-2.0-flash"],
            Some(UPSTREAM_KEY_ENV),
        );
    config.write_policy(PROVIDERS_POLICY);

    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: Vec::new(),
            env: vec![(UPSTREAM_KEY_ENV.into(), "sk-upstream-test".into())],
        },
    );

    let mocks = serde_json::json!({
        "oai": oai.url(),
        "flaky": flaky.url(),
        "claude": claude.url(),
        "busy": busy.url(),
        "gem": gem.url(),
        "gem-busy": gem_busy.url(),
    });
    pytest::run(
        &proxy,
        &["test_providers.py"],
        &[("SWITCHYARD_MOCKS", mocks.to_string())],
    );
}
