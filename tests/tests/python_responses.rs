//! The official OpenAI Python SDK's Responses API (`client.responses.*`), unchanged, against
//! the real proxy: `tests/python/test_responses.py` with translated targets (a chat-only
//! OpenAI-compatible mock, an Anthropic mock), native targets (mocks that speak
//! `/v1/responses`, declared with `responsesApi: true`), and a mock scripted to cut streams;
//! a second proxy on the same config runs with `--responses-unsupported-tools omit`.
//!
//! Needs `python3 -m pip install -r tests/python/requirements.txt`; fails (never skips) without.

use switchyard_tests::config::ANTHROPIC;
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, pytest};

/// The environment variable the proxy reads the Anthropic mock's key from.
const UPSTREAM_KEY_ENV: &str = "SWITCHYARD_TEST_UPSTREAM_KEY";

const POLICY: &str = r#"
# A chat-completions-only server: Responses requests are translated.
route translated {
  when model == "gpt-4o"
  use chat/gpt-4o
}

# Two servers that speak the Responses API and keep conversations themselves: a follow-up
# must reach the one that answered, whatever the split draws.
route native {
  when model == "native"
  split { 50% native-a/gpt-4o, 50% native-b/gpt-4o }
}

# The response cache in front of the chat-only server.
route cached {
  when model == "cached"
  use chat/gpt-4o
  cache for 10m
}

route claude {
  when model == "claude-mock"
  use claude/claude-mock
}

# Scripted per test to cut its stream; translated, then native.
route cut {
  when model == "cut-stream"
  use cut/gpt-4o
}

route cut-native {
  when model == "cut-native"
  use cut-native/gpt-4o
}
"#;

/// An `openai-compatible` LLMProvider that declares Responses API support.
fn native_provider(name: &str, base_url: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: {name}\n\
         spec:\n  type: openai-compatible\n  baseUrl: {base_url}\n  responsesApi: true\n  \
         models:\n    - name: gpt-4o\n      pricing: {{ inputPerMillion: 1, outputPerMillion: 2 }}\n"
    )
}

#[test]
fn openai_responses_api_against_the_proxy() {
    pytest::require_packages(&["openai"]);

    let chat = MockProcess::named("chat");
    let native_a = MockProcess::named("native-a");
    let native_b = MockProcess::named("native-b");
    let claude = MockProcess::spawn(&["--name", "claude", "--require-auth"]);
    let cut = MockProcess::named("cut");
    let cut_native = MockProcess::named("cut-native");

    let mut config = ConfigDir::new();
    config
        .add_provider("chat", &chat.base_url(), &["gpt-4o"])
        .add_provider("cut", &cut.base_url(), &["gpt-4o"])
        .add_typed_provider(
            "claude",
            ANTHROPIC,
            &claude.url(),
            &["claude-mock"],
            Some(UPSTREAM_KEY_ENV),
        );
    let natives = [
        native_provider("native-a", &native_a.base_url()),
        native_provider("native-b", &native_b.base_url()),
        native_provider("cut-native", &cut_native.base_url()),
    ];
    config.write_file("native.yaml", &natives.join("---\n"));
    config.write_policy(POLICY);

    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: Vec::new(),
            env: vec![(UPSTREAM_KEY_ENV.into(), "sk-upstream-test".into())],
        },
    );

    // The same config with built-in tools omitted on chat-only targets (what the Codex CLI
    // needs there: it always offers `web_search`).
    let omitting = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: vec!["--responses-unsupported-tools".into(), "omit".into()],
            env: vec![(UPSTREAM_KEY_ENV.into(), "sk-upstream-test".into())],
        },
    );

    let mocks = serde_json::json!({
        "chat": chat.url(),
        "native-a": native_a.url(),
        "native-b": native_b.url(),
        "claude": claude.url(),
        "cut": cut.url(),
        "cut-native": cut_native.url(),
    });
    pytest::run(
        &proxy,
        &["test_responses.py"],
        &[
            ("SWITCHYARD_MOCKS", mocks.to_string()),
            ("SWITCHYARD_OMITTING_URL", omitting.base_url()),
        ],
    );
}
