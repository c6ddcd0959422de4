//! `load_dir` on temporary folders: good configs, diagnostics with positions, credentials.

use std::path::Path;

use switchyard_proxy::config::{ConfigError, CredentialState, load_dir};

const PROVIDERS: &str = r#"apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: mock-a
spec:
  type: mock
  mock: { latency: 10ms, ttft: 5ms, tokensPerSecond: 100 }
  models:
    - name: small
      pricing: { inputPerMillion: 0.15, outputPerMillion: 0.6 }
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: openai
spec:
  type: openai-compatible
  baseUrl: http://127.0.0.1:9/v1
  credentials:
    secretRef: { name: llm-keys, key: openai }
  models:
    - name: gpt-4o
      pricing: { inputPerMillion: 2.5, outputPerMillion: 10 }
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: from-env
spec:
  type: openai-compatible
  baseUrl: http://127.0.0.1:9/v1
  credentials:
    env: PATH
  models:
    - name: m
      pricing: { inputPerMillion: 1, outputPerMillion: 1 }
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: unset-env
spec:
  type: openai-compatible
  baseUrl: http://127.0.0.1:9/v1
  credentials:
    env: SWITCHYARD_TEST_SURELY_UNSET_VARIABLE
  models:
    - name: m
      pricing: { inputPerMillion: 1, outputPerMillion: 1 }
"#;

const ROUTES: &str = r#"apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: main
spec:
  policy: |
    route chat {
      when model == "gpt-4o"
      use openai/gpt-4o
      failover to mock-a/small
    }
"#;

const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: llm-keys
type: Opaque
data:
  openai: c2stZnJvbS1zZWNyZXQ=
"#;

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write config file");
}

fn provider_index(config: &switchyard_proxy::config::ActiveConfig, name: &str) -> usize {
    config
        .snapshot
        .providers
        .iter()
        .position(|p| p.name == name)
        .expect("provider in the snapshot")
}

#[test]
fn a_good_folder_loads_with_its_credentials() {
    let dir = folder(&[
        ("providers.yaml", PROVIDERS),
        ("routes.yaml", ROUTES),
        ("secrets.yaml", SECRET),
    ]);
    let config = load_dir(dir.path(), 7).expect("loads");
    assert_eq!(config.version, 7);
    assert_eq!(config.snapshot.routes.len(), 1);
    assert_eq!(config.snapshot.hash, config.snapshot.compute_hash());
    assert_eq!(config.credentials.len(), config.snapshot.providers.len());

    let at = |name| &config.credentials[provider_index(&config, name)];
    assert_eq!(at("mock-a"), &CredentialState::NotConfigured);
    match at("openai") {
        CredentialState::Resolved(key) => assert_eq!(key.expose(), "sk-from-secret"),
        other => panic!("expected the Secret document's key, got {other:?}"),
    }
    match at("from-env") {
        CredentialState::Resolved(key) => {
            assert_eq!(
                Some(key.expose()),
                std::env::var("PATH").ok().as_deref().map(str::trim)
            );
        }
        other => panic!("expected the environment's value, got {other:?}"),
    }
    assert_eq!(
        at("unset-env").describe(),
        "missing: environment variable `SWITCHYARD_TEST_SURELY_UNSET_VARIABLE` is not set"
    );
    // Keys never show in Debug output.
    assert!(!format!("{config:?}").contains("sk-from-secret"));
}

#[test]
fn a_missing_secret_is_a_credential_state_not_a_load_failure() {
    let dir = folder(&[("providers.yaml", PROVIDERS), ("routes.yaml", ROUTES)]);
    let config = load_dir(dir.path(), 1).expect("loads without the Secret");
    let openai = &config.credentials[provider_index(&config, "openai")];
    assert_eq!(
        openai.describe(),
        "missing: no secret `llm-keys` in the config folder"
    );

    let other_key = SECRET.replace("openai:", "anthropic:");
    write(dir.path(), "secrets.yaml", &other_key);
    let config = load_dir(dir.path(), 1).expect("loads with the wrong key");
    let openai = &config.credentials[provider_index(&config, "openai")];
    assert_eq!(
        openai.describe(),
        "missing: secret `llm-keys` has no key `openai`"
    );
}

#[test]
fn a_bad_policy_is_reported_with_file_line_and_column() {
    let bad = ROUTES.replace("use openai/gpt-4o", "use opnai/gpt-4o");
    let dir = folder(&[("providers.yaml", PROVIDERS), ("routes.yaml", &bad)]);
    let err = load_dir(dir.path(), 1).expect_err("unknown provider");
    assert!(
        matches!(err, ConfigError::Policy { errors: 1, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    let at = format!("{}:9:11", dir.path().join("routes.yaml").display());
    assert!(text.contains(&at), "expected `{at}` in:\n{text}");
    assert!(text.contains("opnai"), "{text}");
    assert!(text.contains("help"), "{text}");
}

#[test]
fn a_bad_document_is_reported_with_file_line_and_column() {
    let bad = PROVIDERS.replacen("baseUrl:", "baseURL:", 1);
    let dir = folder(&[("providers.yaml", &bad), ("routes.yaml", ROUTES)]);
    let err = load_dir(dir.path(), 1).expect_err("unknown field");
    assert!(matches!(err, ConfigError::Load(_)), "{err:?}");
    let text = err.to_string();
    let at = format!("{}:18:3", dir.path().join("providers.yaml").display());
    assert!(text.contains(&at), "expected `{at}` in:\n{text}");
    assert!(text.contains("baseUrl"), "{text}");
}

#[test]
fn an_empty_folder_is_an_error() {
    let dir = folder(&[("README.md", "not yaml")]);
    let err = load_dir(dir.path(), 1).expect_err("nothing to serve");
    assert!(matches!(err, ConfigError::Empty(_)), "{err:?}");
    assert!(load_dir(&dir.path().join("missing"), 1).is_err());
}

#[test]
fn the_quickstart_example_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let config = load_dir(&dir, 1).expect("quickstart loads");
    assert!(!config.snapshot.routes.is_empty());
    assert!(
        config
            .credentials
            .iter()
            .all(|c| *c == CredentialState::NotConfigured)
    );
}
