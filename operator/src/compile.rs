//! The pure step: the watched objects and Secrets of the operator's scope → one compile
//! [`Outcome`] (snapshot or diagnostics, resolved credentials, a verdict per object).
//!
//! No I/O: the reconcilers hand in what their caches hold. Positions in diagnostics are
//! relative to `spec.policy` (objects are wrapped with [`Loaded::detached`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchyard_crds::client_keys::{self, ClientKey};
use switchyard_crds::{
    Budget, Config, DiagnosticSeverity, LLMProvider, Loaded, PolicyDiagnostic, RoutePolicy,
};
use switchyard_dsl::{Snapshot, SourceKind};

/// Which of the three resources an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    LLMProvider,
    RoutePolicy,
    Budget,
}

/// `kind namespace/name` of one watched object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of<K: kube::Resource>(kind: Kind, obj: &K) -> Self {
        Self {
            kind,
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Everything the compile reads: the caches' current contents.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub providers: Vec<Arc<LLMProvider>>,
    pub route_policies: Vec<Arc<RoutePolicy>>,
    pub budgets: Vec<Arc<Budget>>,
    pub secrets: Vec<Arc<Secret>>,
}

/// Why an LLMProvider was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `SecretMissing` or `Invalid`.
    pub reason: &'static str,
    pub message: String,
}

/// The result of compiling one scope.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Hex SHA-256 of every input that matters (specs, generations, resolved credentials).
    pub fingerprint: String,
    /// The compiled snapshot; `None` when any object has an error.
    pub snapshot: Option<Snapshot>,
    /// The snapshot with every `mode: Shadow` RoutePolicy promoted, decided by the proxies
    /// beside the live one; `None` without shadow policies or when they have errors.
    pub shadow: Option<Snapshot>,
    /// Resolved API keys by provider name. Never logged.
    pub credentials: BTreeMap<String, String>,
    /// Client keys of the labelled Secrets in scope, hashed (the plaintext never leaves the
    /// operator), sorted by Secret and key id.
    pub client_keys: Vec<ClientKey>,
    /// Client-key entries left out: `secret ns/name, key id `id`: why` (never a value).
    pub client_key_problems: Vec<String>,
    /// Providers that were not accepted; absent means accepted.
    pub rejected: BTreeMap<ObjectKey, Rejection>,
    /// Diagnostics of each RoutePolicy / Budget (empty vector: compiled cleanly).
    pub diagnostics: BTreeMap<ObjectKey, Vec<PolicyDiagnostic>>,
    /// Set when the provider catalogue had errors, so no policy could be compiled.
    pub catalogue_error: Option<String>,
    /// `metadata.generation` of every object that went into this compile.
    pub generations: BTreeMap<ObjectKey, i64>,
}

impl Outcome {
    /// Hex SHA-256 of the resolved credentials and client keys (to republish when only a
    /// key changed: keys are not part of the snapshot's content hash).
    pub fn credentials_digest(&self) -> String {
        digest(&(&self.credentials, &self.client_keys))
    }

    /// Error diagnostics of one policy object.
    pub fn errors(&self, key: &ObjectKey) -> Vec<&PolicyDiagnostic> {
        self.diagnostics
            .get(key)
            .map(|d| {
                d.iter()
                    .filter(|d| d.severity == DiagnosticSeverity::Error)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn digest<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// What changes the outcome, cheap to compute so that compiles are skipped when it is
/// unchanged: each object's uid and `metadata.generation` (which Kubernetes bumps on every spec
/// change of a resource with a status subresource, and never for status writes) and the
/// resolved credentials.
pub fn fingerprint(inputs: &Inputs) -> String {
    fn entries<K: kube::Resource>(kind: Kind, objs: &[Arc<K>]) -> Vec<(ObjectKey, String, i64)> {
        let mut v: Vec<_> = objs
            .iter()
            .map(|o| {
                (
                    ObjectKey::of(kind, o.as_ref()),
                    o.meta().uid.clone().unwrap_or_default(),
                    o.meta().generation.unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    }
    let (credentials, missing) = resolve_credentials(inputs);
    let missing: BTreeMap<String, String> = missing
        .into_iter()
        .map(|(k, r)| (k.to_string(), r.message))
        .collect();
    digest(&(
        entries(Kind::LLMProvider, &inputs.providers),
        entries(Kind::RoutePolicy, &inputs.route_policies),
        entries(Kind::Budget, &inputs.budgets),
        digest(&credentials),
        missing,
        digest(&client_keys(inputs)),
    ))
}

/// The hashed client keys of every Secret in scope labelled `switchyard.dev/client-keys:
/// "true"` (format: `switchyard_crds::client_keys`), and the entries left out. When two
/// Secrets hold the same key id, both entries are kept (ids are names, hashes are the keys).
pub fn client_keys(inputs: &Inputs) -> (Vec<ClientKey>, Vec<String>) {
    let mut secrets: Vec<&Arc<Secret>> = inputs
        .secrets
        .iter()
        .filter(|s| client_keys::is_client_keys_secret(s))
        .collect();
    secrets.sort_by_key(|s| (s.namespace(), s.name_any()));
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for secret in secrets {
        let name = format!(
            "{}/{}",
            secret.namespace().unwrap_or_default(),
            secret.name_any()
        );
        for (id, parsed) in client_keys::secret_entries(secret) {
            match parsed {
                Ok(key) => keys.push(key),
                Err(why) => problems.push(format!("secret `{name}`, key id `{id}`: {why}")),
            }
        }
    }
    (keys, problems)
}

/// API keys of the providers whose Secret key resolved, and a rejection for each that did not.
pub fn resolve_credentials(
    inputs: &Inputs,
) -> (BTreeMap<String, String>, BTreeMap<ObjectKey, Rejection>) {
    let mut keys = BTreeMap::new();
    let mut missing = BTreeMap::new();
    for provider in &inputs.providers {
        let Some(secret_ref) = provider
            .spec
            .credentials
            .as_ref()
            .and_then(|c| c.secret_ref.as_ref())
        else {
            continue;
        };
        let namespace = secret_ref
            .namespace
            .clone()
            .or_else(|| provider.namespace())
            .unwrap_or_default();
        let secret = inputs.secrets.iter().find(|s| {
            s.name_any() == secret_ref.name && s.namespace().as_deref() == Some(&namespace)
        });
        let value = secret.and_then(|s| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(&secret_ref.key))
                .map(|v| v.clone().into_bytes())
                .or_else(|| {
                    s.data
                        .as_ref()
                        .and_then(|d| d.get(&secret_ref.key))
                        .map(|v| v.0.clone())
                })
        });
        let key = ObjectKey::of(Kind::LLMProvider, provider.as_ref());
        let rejection = |message: String| Rejection {
            reason: "SecretMissing",
            message,
        };
        match (secret, value) {
            (None, _) => {
                missing.insert(
                    key,
                    rejection(format!(
                        "secret `{namespace}/{}` (key `{}`) not found",
                        secret_ref.name, secret_ref.key
                    )),
                );
            }
            (Some(_), None) => {
                missing.insert(
                    key,
                    rejection(format!(
                        "secret `{namespace}/{}` has no key `{}`",
                        secret_ref.name, secret_ref.key
                    )),
                );
            }
            (Some(_), Some(bytes)) => match String::from_utf8(bytes) {
                Ok(v) => {
                    keys.insert(provider.name_any(), v.trim_end().to_string());
                }
                Err(_) => {
                    missing.insert(
                        key,
                        Rejection {
                            reason: "SecretInvalid",
                            message: format!(
                                "key `{}` of secret `{namespace}/{}` is not UTF-8 text",
                                secret_ref.key, secret_ref.name
                            ),
                        },
                    );
                }
            },
        }
    }
    (keys, missing)
}

fn detached_name(kind: Kind, obj: &impl kube::Resource) -> String {
    let key = ObjectKey::of(kind, obj);
    format!("{:?}/{}/{}", key.kind, key.namespace, key.name)
}

/// Compiles every policy of the scope against its provider catalogue.
pub fn compile(inputs: &Inputs) -> Outcome {
    let fingerprint = fingerprint(inputs);
    let (credentials, mut rejected) = resolve_credentials(inputs);
    let (client_keys, client_key_problems) = client_keys(inputs);
    let config = Config {
        providers: inputs
            .providers
            .iter()
            .map(|p| Loaded::detached((**p).clone(), detached_name(Kind::LLMProvider, p.as_ref())))
            .collect(),
        route_policies: inputs
            .route_policies
            .iter()
            .map(|p| Loaded::detached((**p).clone(), detached_name(Kind::RoutePolicy, p.as_ref())))
            .collect(),
        budgets: inputs
            .budgets
            .iter()
            .map(|p| Loaded::detached((**p).clone(), detached_name(Kind::Budget, p.as_ref())))
            .collect(),
        secrets: Vec::new(),
        tests: Vec::new(),
        skipped: Vec::new(),
    };
    let mut generations = BTreeMap::new();
    for p in &inputs.providers {
        generations.insert(
            ObjectKey::of(Kind::LLMProvider, p.as_ref()),
            p.meta().generation.unwrap_or(0),
        );
    }
    let mut diagnostics = BTreeMap::new();
    for p in &inputs.route_policies {
        let key = ObjectKey::of(Kind::RoutePolicy, p.as_ref());
        generations.insert(key.clone(), p.meta().generation.unwrap_or(0));
        diagnostics.insert(key, Vec::new());
    }
    for p in &inputs.budgets {
        let key = ObjectKey::of(Kind::Budget, p.as_ref());
        generations.insert(key.clone(), p.meta().generation.unwrap_or(0));
        diagnostics.insert(key, Vec::new());
    }

    let mut outcome = Outcome {
        fingerprint,
        credentials,
        client_keys,
        client_key_problems,
        generations,
        ..Outcome::default()
    };
    match switchyard_crds::compile(&config) {
        Err(errors) => {
            let mut lines = Vec::new();
            for error in errors.iter() {
                let owner = config
                    .providers
                    .iter()
                    .find(|p| p.origin.file == error.file);
                let text = match &error.help {
                    Some(help) => format!("{} (help: {help})", error.message),
                    None => error.message.clone(),
                };
                if let Some(owner) = owner {
                    let key = ObjectKey::of(Kind::LLMProvider, &owner.object);
                    lines.push(format!("{}/{}: {text}", key.namespace, key.name));
                    let entry = rejected.entry(key).or_insert(Rejection {
                        reason: "Invalid",
                        message: String::new(),
                    });
                    if entry.reason != "Invalid" {
                        entry.reason = "Invalid";
                        entry.message.clear();
                    }
                    if !entry.message.is_empty() {
                        entry.message.push_str("; ");
                    }
                    entry.message.push_str(&text);
                } else {
                    lines.push(text);
                }
            }
            outcome.catalogue_error = Some(lines.join("; "));
        }
        Ok(compiled) => {
            let sources = switchyard_crds::sources(&config);
            for diag in &compiled.diagnostics {
                let Some(source) = sources.get(diag.source.0 as usize) else {
                    continue;
                };
                let kind = match source.kind {
                    SourceKind::Budgets => Kind::Budget,
                    _ => Kind::RoutePolicy,
                };
                let (namespace, name) = source
                    .origin
                    .split_once('/')
                    .map(|(n, m)| (n.to_string(), m.to_string()))
                    .unwrap_or_else(|| (String::new(), source.origin.clone()));
                let key = ObjectKey {
                    kind,
                    namespace,
                    name,
                };
                diagnostics
                    .entry(key)
                    .or_default()
                    .push(PolicyDiagnostic::from_diagnostic(diag, source));
            }
            outcome.snapshot = compiled.snapshot;
            outcome.shadow = shadow(&config, &mut diagnostics);
        }
    }
    outcome.diagnostics = diagnostics;
    outcome.rejected = rejected;
    outcome
}

/// The shadow snapshot (every `mode: Shadow` RoutePolicy promoted), when there is one and it
/// compiles; the diagnostics of the shadow policies themselves go to their objects (those of
/// the live ones were reported by the live compile).
fn shadow(
    config: &Config,
    diagnostics: &mut BTreeMap<ObjectKey, Vec<PolicyDiagnostic>>,
) -> Option<Snapshot> {
    let compiled = switchyard_crds::compile_shadow(config)?.ok()?;
    let sources = switchyard_crds::shadow_sources(config)?;
    for diag in &compiled.diagnostics {
        let Some(source) = sources.get(diag.source.0 as usize) else {
            continue;
        };
        let Some(policy) = config
            .route_policies
            .iter()
            .find(|p| p.object.spec.is_shadow() && p.qualified_name() == source.origin)
        else {
            continue;
        };
        let key = ObjectKey::of(Kind::RoutePolicy, &policy.object);
        diagnostics
            .entry(key)
            .or_default()
            .push(PolicyDiagnostic::from_diagnostic(diag, source));
    }
    compiled.snapshot
}

/// One line per diagnostic: `line:column: error: message (help: ...)`.
pub fn render(diagnostics: &[&PolicyDiagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let severity = match d.severity {
                DiagnosticSeverity::Error => "error",
                DiagnosticSeverity::Warning => "warning",
            };
            match &d.help {
                Some(help) => format!(
                    "{}:{}: {severity}: {} (help: {help})",
                    d.line, d.column, d.message
                ),
                None => format!("{}:{}: {severity}: {}", d.line, d.column, d.message),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{provider, route_policy, secret};

    const GOOD: &str = "route chat {\n  when model == \"gpt-4o\"\n  use mock-primary/large\n}\n";

    fn inputs(providers: Vec<LLMProvider>, policies: Vec<RoutePolicy>) -> Inputs {
        Inputs {
            providers: providers.into_iter().map(Arc::new).collect(),
            route_policies: policies.into_iter().map(Arc::new).collect(),
            ..Inputs::default()
        }
    }

    #[test]
    fn shadow_policies_do_not_serve_and_their_errors_do_not_block_the_live_snapshot() {
        let mut shadow = route_policy(
            "candidate",
            "route team-a {\n  when model == \"gpt-4o\" and header(\"x-team\") == \"a\"\n  use mock-primary/large\n}\n",
        );
        shadow.spec.mode = Some(switchyard_crds::PolicyMode::Shadow);
        let outcome = compile(&inputs(
            vec![provider("mock-primary", None)],
            vec![route_policy("chat", GOOD), shadow.clone()],
        ));
        let live = outcome.snapshot.as_ref().expect("the live policy compiles");
        let names = |s: &Snapshot| s.routes.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(live), ["chat"]);
        let candidate = outcome.shadow.as_ref().expect("a shadow snapshot");
        assert_eq!(
            names(candidate),
            ["team-a", "chat"],
            "by namespace/name at equal priority"
        );

        // A broken candidate: diagnostics on it, the live snapshot unharmed, no shadow.
        shadow.spec.policy = "route team-a {\n  use nowhere/large\n}\n".into();
        let outcome = compile(&inputs(
            vec![provider("mock-primary", None)],
            vec![route_policy("chat", GOOD), shadow.clone()],
        ));
        assert!(outcome.snapshot.is_some());
        assert!(outcome.shadow.is_none());
        let key = ObjectKey::of(Kind::RoutePolicy, &shadow);
        assert!(
            !outcome.errors(&key).is_empty(),
            "{:?}",
            outcome.diagnostics
        );
    }

    #[test]
    fn an_invalid_provider_is_rejected_and_no_policy_compiles() {
        let mut broken = provider("mock-primary", None);
        broken.spec.mock = None;
        let outcome = compile(&inputs(
            vec![broken.clone()],
            vec![route_policy("chat", GOOD)],
        ));
        let key = ObjectKey::of(Kind::LLMProvider, &broken);
        let rejection = outcome.rejected.get(&key).expect("rejected");
        assert_eq!(rejection.reason, "Invalid");
        assert!(outcome.snapshot.is_none());
        assert!(outcome.catalogue_error.is_some());
    }

    #[test]
    fn the_fingerprint_follows_generations_and_keys_not_status() {
        let p = provider("mock-primary", Some(("k", "apiKey")));
        let mut rp = route_policy("chat", GOOD);
        let mut i = inputs(vec![p], vec![rp.clone()]);
        i.secrets = vec![Arc::new(secret("k", "apiKey", "one"))];
        let first = fingerprint(&i);
        rp.status = Some(Default::default());
        i.route_policies = vec![Arc::new(rp.clone())];
        assert_eq!(fingerprint(&i), first, "status does not count");
        i.secrets = vec![Arc::new(secret("k", "apiKey", "two"))];
        let rekeyed = fingerprint(&i);
        assert_ne!(rekeyed, first, "a new key counts");
        rp.metadata.generation = Some(4);
        i.route_policies = vec![Arc::new(rp)];
        assert_ne!(fingerprint(&i), rekeyed, "a new generation counts");
    }

    #[test]
    fn labelled_secrets_become_hashed_client_keys() {
        let mut keys = secret(
            "client-keys",
            "alpha",
            "{key: sk-plain-alpha, team: support, allowIps: [10.0.0.0/8]}",
        );
        keys.metadata.labels = Some(
            [(
                client_keys::CLIENT_KEYS_LABEL.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        if let Some(d) = keys.string_data.as_mut() {
            d.insert("beta".into(), "{key: sk-plain-beta, user: bob}".into());
            d.insert("broken".into(), "{key: sk-plain-broken, nope: 1}".into());
        }
        let unlabelled = secret("other", "gamma", "{key: sk-plain-gamma}");
        let mut i = inputs(
            vec![provider("mock-primary", None)],
            vec![route_policy("chat", GOOD)],
        );
        i.secrets = vec![Arc::new(keys.clone()), Arc::new(unlabelled)];
        let outcome = compile(&i);
        let ids: Vec<&str> = outcome.client_keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["alpha", "beta"]);
        assert_eq!(
            outcome.client_keys[0].sha256,
            client_keys::sha256_hex("sk-plain-alpha")
        );
        assert_eq!(outcome.client_keys[0].team.as_deref(), Some("support"));
        assert_eq!(outcome.client_key_problems.len(), 1);
        assert!(outcome.client_key_problems[0].contains("`broken`"));
        assert!(!outcome.client_key_problems[0].contains("sk-plain"));

        // The published envelope carries hashes only.
        let publisher = crate::publish::Publisher::default();
        assert_eq!(publisher.publish(&outcome).expect("json"), Some(1));
        let live = publisher.current().expect("live");
        assert!(
            live.data
                .contains(&client_keys::sha256_hex("sk-plain-beta"))
        );
        assert!(!live.data.contains("sk-plain"), "{}", live.data);
        let env: switchyard_dsl::channel::SnapshotEnvelope =
            serde_json::from_str(&live.data).expect("envelope");
        assert_eq!(env.client_keys, outcome.client_keys);

        // A key change is a new fingerprint and a new version; the content hash stays.
        let first = fingerprint(&i);
        if let Some(d) = keys.string_data.as_mut() {
            d.insert(
                "alpha".into(),
                "{key: sk-plain-rotated, team: support}".into(),
            );
        }
        i.secrets[0] = Arc::new(keys);
        assert_ne!(fingerprint(&i), first);
        let rotated = compile(&i);
        assert_eq!(
            rotated.snapshot.as_ref().map(|s| &s.hash),
            outcome.snapshot.as_ref().map(|s| &s.hash)
        );
        assert_eq!(publisher.publish(&rotated).expect("json"), Some(2));
        assert_eq!(publisher.publish(&rotated).expect("json"), None);
    }

    #[test]
    fn a_deleted_client_key_entry_or_secret_is_gone_from_the_next_version() {
        let mut keys = secret("client-keys", "alpha", "{key: sk-plain-alpha}");
        keys.metadata.labels = Some(
            [(
                client_keys::CLIENT_KEYS_LABEL.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        if let Some(d) = keys.string_data.as_mut() {
            d.insert("beta".into(), "{key: sk-plain-beta}".into());
        }
        let mut i = inputs(
            vec![provider("mock-primary", None)],
            vec![route_policy("chat", GOOD)],
        );
        i.secrets = vec![Arc::new(keys.clone())];
        let publisher = crate::publish::Publisher::default();
        let envelope = |publisher: &crate::publish::Publisher| {
            let live = publisher.current().expect("live");
            serde_json::from_str::<switchyard_dsl::channel::SnapshotEnvelope>(&live.data)
                .expect("envelope")
        };
        assert_eq!(publisher.publish(&compile(&i)).expect("json"), Some(1));
        assert_eq!(envelope(&publisher).client_keys.len(), 2);

        // The entry `beta` is deleted from the Secret: version 2 carries only `alpha`.
        if let Some(d) = keys.string_data.as_mut() {
            d.remove("beta");
        }
        i.secrets = vec![Arc::new(keys)];
        assert_eq!(publisher.publish(&compile(&i)).expect("json"), Some(2));
        let ids: Vec<String> = envelope(&publisher)
            .client_keys
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["alpha"]);

        // The Secret is deleted: version 3 carries no key at all.
        i.secrets.clear();
        assert_eq!(publisher.publish(&compile(&i)).expect("json"), Some(3));
        assert!(envelope(&publisher).client_keys.is_empty());
    }

    #[test]
    fn diagnostics_are_attributed_to_their_object() {
        let broken = "route other {\n  use nope/large\n}\n";
        let outcome = compile(&inputs(
            vec![provider("mock-primary", None)],
            vec![route_policy("a", GOOD), route_policy("b", broken)],
        ));
        let a = route_policy("a", GOOD);
        let b = route_policy("b", broken);
        assert!(
            outcome
                .errors(&ObjectKey::of(Kind::RoutePolicy, &a))
                .is_empty()
        );
        let errors = outcome.errors(&ObjectKey::of(Kind::RoutePolicy, &b));
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (2, 7));
        assert!(render(&errors).starts_with("2:7: error: "));
    }
}
