//! Provider keys from Secret documents in the config folder or from the process environment.

use std::env::VarError;

use switchyard_crds::Config;
use switchyard_dsl::ir::Credential;

use super::{ApiKey, CredentialState};

/// Resolves one provider's credential. `env` reads an environment variable (a parameter so
/// tests need not touch the process environment). Reasons name what is missing, never a value.
pub(super) fn resolve(
    config: &Config,
    credential: Option<&Credential>,
    env: impl Fn(&str) -> Result<String, VarError>,
) -> CredentialState {
    match credential {
        None => CredentialState::NotConfigured,
        Some(Credential::Env { var }) => match env(var) {
            Ok(value) => key_from(value, || format!("environment variable `{var}` is empty")),
            Err(VarError::NotPresent) => {
                missing(format!("environment variable `{var}` is not set"))
            }
            Err(VarError::NotUnicode(_)) => {
                missing(format!("environment variable `{var}` is not valid UTF-8"))
            }
        },
        Some(Credential::Secret {
            namespace,
            name,
            key,
        }) => from_secret(config, namespace.as_deref(), name, key),
    }
}

/// Kubernetes semantics first (the Secret in the given namespace); a standalone folder's
/// Secret documents often carry no namespace, so those match any namespace as a fallback.
fn from_secret(config: &Config, namespace: Option<&str>, name: &str, key: &str) -> CredentialState {
    let value = config
        .secret_value(namespace, name, key)
        .or_else(|| namespace.and_then(|_| config.secret_value(None, name, key)));
    let shown = match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    match value {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(value) => key_from(value, || {
                format!("key `{key}` of secret `{shown}` is empty")
            }),
            Err(_) => missing(format!("key `{key}` of secret `{shown}` is not UTF-8 text")),
        },
        None => {
            let exists = config.secrets.iter().any(|s| {
                s.name() == name && (s.namespace() == namespace || s.namespace().is_none())
            });
            if exists {
                missing(format!("secret `{shown}` has no key `{key}`"))
            } else {
                missing(format!("no secret `{shown}` in the config folder"))
            }
        }
    }
}

/// Surrounding whitespace is dropped (a key written with `echo` into a Secret ends in `\n`).
fn key_from(value: String, empty: impl FnOnce() -> String) -> CredentialState {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        missing(empty())
    } else if trimmed.len() == value.len() {
        CredentialState::Resolved(ApiKey(value))
    } else {
        CredentialState::Resolved(ApiKey(trimmed.to_string()))
    }
}

fn missing(reason: String) -> CredentialState {
    CredentialState::Missing { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: llm-keys
stringData:
  openai: "sk-openai\n"
  blank: "  "
data:
  anthropic: c2stYW50aHJvcGlj
---
apiVersion: v1
kind: Secret
metadata:
  name: team-keys
  namespace: ml
stringData:
  openai: sk-team
"#;

    fn config() -> Config {
        switchyard_crds::load_str("secrets.yaml", SECRETS).expect("test secrets load")
    }

    fn secret(namespace: Option<&str>, name: &str, key: &str) -> Credential {
        Credential::Secret {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            key: key.to_string(),
        }
    }

    fn no_env(_: &str) -> Result<String, VarError> {
        Err(VarError::NotPresent)
    }

    fn resolved(key: &str) -> CredentialState {
        CredentialState::Resolved(ApiKey::new(key))
    }

    #[test]
    fn secret_string_data_and_data_resolve() {
        let c = config();
        let got = resolve(&c, Some(&secret(None, "llm-keys", "openai")), no_env);
        assert_eq!(got, resolved("sk-openai"));
        let got = resolve(&c, Some(&secret(None, "llm-keys", "anthropic")), no_env);
        assert_eq!(got, resolved("sk-anthropic"));
    }

    #[test]
    fn namespaced_reference_prefers_its_namespace_then_unnamespaced_documents() {
        let c = config();
        let got = resolve(&c, Some(&secret(Some("ml"), "team-keys", "openai")), no_env);
        assert_eq!(got, resolved("sk-team"));
        let got = resolve(
            &c,
            Some(&secret(Some("prod"), "llm-keys", "openai")),
            no_env,
        );
        assert_eq!(got, resolved("sk-openai"));
        let got = resolve(
            &c,
            Some(&secret(Some("prod"), "team-keys", "openai")),
            no_env,
        );
        assert_eq!(
            got.describe(),
            "missing: no secret `prod/team-keys` in the config folder"
        );
    }

    #[test]
    fn missing_keys_and_secrets_say_what_is_missing() {
        let c = config();
        let got = resolve(&c, Some(&secret(None, "llm-keys", "gemini")), no_env);
        assert_eq!(
            got.describe(),
            "missing: secret `llm-keys` has no key `gemini`"
        );
        let got = resolve(&c, Some(&secret(None, "other", "openai")), no_env);
        assert_eq!(
            got.describe(),
            "missing: no secret `other` in the config folder"
        );
        let got = resolve(&c, Some(&secret(None, "llm-keys", "blank")), no_env);
        assert_eq!(
            got.describe(),
            "missing: key `blank` of secret `llm-keys` is empty"
        );
    }

    #[test]
    fn environment_variables() {
        let c = Config::default();
        let env = |var: &str| match var {
            "OPENAI_KEY" => Ok("sk-env".to_string()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        };
        let var = |v: &str| Credential::Env { var: v.to_string() };
        assert_eq!(
            resolve(&c, Some(&var("OPENAI_KEY")), env),
            resolved("sk-env")
        );
        assert_eq!(
            resolve(&c, Some(&var("NOPE")), env).describe(),
            "missing: environment variable `NOPE` is not set"
        );
        assert_eq!(
            resolve(&c, Some(&var("EMPTY")), env).describe(),
            "missing: environment variable `EMPTY` is empty"
        );
        assert_eq!(resolve(&c, None, env), CredentialState::NotConfigured);
    }
}
