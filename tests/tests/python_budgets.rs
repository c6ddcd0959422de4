//! Client keys and budgets as an application sees them through the official OpenAI Python
//! SDK: 401 for a bad key, 429 with `Retry-After` when a budget is exhausted, a downgrade
//! that says so in a header, and a stream cut off when it runs past its budget.

use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, pytest};

const POLICY: &str = r#"
route chat {
  when model in ["gpt-4o", "gpt-4o-mini"]
  use up/gpt-4o
}
"#;

const BUDGETS: &str = r#"apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  name: sdk
spec:
  policy: |
    budget few-requests {
      for key "limited"
      limit 2 requests per minute
      on exhausted reject
    }

    budget downgrade-after-one {
      for key "downgraded"
      limit 1 requests per minute
      on exhausted downgrade to up/gpt-4o-mini
    }

    budget short-streams {
      for key "streamer"
      limit 300 tokens per day
      on overrun cut
    }
"#;

const KEYS: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: client-keys
  labels: { switchyard.dev/client-keys: "true" }
stringData:
  limited: '{"key": "sk-sdk-limited-0123456789", "team": "sdk"}'
  downgraded: '{"key": "sk-sdk-downgraded-0123456789", "team": "sdk"}'
  streamer: '{"key": "sk-sdk-streamer-0123456789", "team": "sdk"}'
  free: '{"key": "sk-sdk-free-0123456789", "team": "sdk"}'
"#;

#[test]
fn openai_sdk_sees_keys_and_budgets() {
    pytest::require_packages(&["openai"]);
    // Long completions, so a stream without `max_tokens` outruns its reservation.
    let up = MockProcess::spawn(&["--name", "up", "--completion-tokens", "2000"]);
    let mut config = ConfigDir::new();
    config.add_provider("up", &up.base_url(), &["gpt-4o", "gpt-4o-mini"]);
    config.write_policy(POLICY);
    config.write_file("budgets.yaml", BUDGETS);
    config.write_file("client-keys.yaml", KEYS);
    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: vec!["--default-max-tokens".into(), "50".into()],
            env: vec![("SWITCHYARD_ALLOW_ANONYMOUS".into(), "false".into())],
        },
    );
    pytest::run(&proxy, &["test_budgets.py"], &[]);
}
