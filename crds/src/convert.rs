//! `LLMProvider` objects → the provider catalogue the compiler checks policies against.
//!
//! Units change on the way: dollars per million tokens become micro-USD (rounded), fractions
//! become parts per million, duration strings become milliseconds. Every invalid value is
//! reported at its line in the YAML file.

use std::collections::{BTreeMap, HashMap};

use switchyard_dsl::ir;
use switchyard_dsl::units::parse_duration_ms;

use crate::load::locate::{PathDisplay, Seg};
use crate::load::{Config, LoadError, LoadErrorKind, Loaded};
use crate::{LLMProvider, LLMProviderSpec, MockSpec, ProviderType};

/// The provider catalogue, sorted by name. Provider names are `metadata.name`; they must be
/// unique across namespaces because policies name providers without a namespace.
pub fn catalogue(config: &Config) -> Result<Vec<ir::Provider>, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<&str, (ir::Provider, &Loaded<LLMProvider>)> = BTreeMap::new();
    for loaded in &config.providers {
        let Some(provider) = convert(loaded, &mut errors) else {
            continue;
        };
        if let Some((_, first)) = by_name.get(loaded.name()) {
            let path = [Seg::key("metadata"), Seg::key("name")];
            errors.push(
                loaded
                    .origin
                    .error_at(
                        LoadErrorKind::Duplicate,
                        &path,
                        format!("provider name `{}` is already used", loaded.name()),
                    )
                    .with_help(format!(
                        "`{}` at {}:{} has the same name; policies name providers without a \
                         namespace, so names must be unique",
                        first.qualified_name(),
                        first.origin.file,
                        first.origin.line
                    )),
            );
            continue;
        }
        by_name.insert(loaded.name(), (provider, loaded));
    }
    if errors.is_empty() {
        Ok(by_name.into_values().map(|(p, _)| p).collect())
    } else {
        Err(errors)
    }
}

/// Collects errors for one provider; `None` when it had any.
struct Checker<'a> {
    loaded: &'a Loaded<LLMProvider>,
    errors: &'a mut Vec<LoadError>,
    failed: bool,
}

fn path(parts: &[&str]) -> Vec<Seg> {
    parts
        .iter()
        .map(|p| p.parse::<usize>().map_or_else(|_| Seg::key(p), Seg::Index))
        .collect()
}

impl Checker<'_> {
    fn error(&mut self, path: &[Seg], message: String, help: &str) {
        self.failed = true;
        let error = self
            .loaded
            .origin
            .error_at(LoadErrorKind::Invalid, path, message);
        self.errors.push(error.with_help(help));
    }

    /// A count that must not be negative.
    fn count(&mut self, value: Option<i64>, at: Vec<Seg>) -> Option<u64> {
        let v = value?;
        match u64::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                let msg = format!("`{}` must not be negative, found `{v}`", PathDisplay(&at));
                self.error(&at, msg, "write a whole number of 0 or more");
                None
            }
        }
    }

    /// Dollars per million tokens → micro-USD per million tokens.
    fn price(&mut self, dollars: f64, at: Vec<Seg>) -> u64 {
        if !dollars.is_finite() || dollars < 0.0 || dollars * 1e6 > u64::MAX as f64 {
            let msg = format!(
                "`{}` must be a price of 0 or more, found `{dollars}`",
                PathDisplay(&at)
            );
            self.error(&at, msg, "write dollars per million tokens, e.g. `2.5`");
            return 0;
        }
        (dollars * 1e6).round() as u64
    }

    /// A fraction 0..=1 → parts per million.
    fn fraction(&mut self, value: Option<f64>, at: Vec<Seg>) -> u32 {
        let Some(v) = value else { return 0 };
        if !(0.0..=1.0).contains(&v) {
            let msg = format!(
                "`{}` must be between 0 and 1, found `{v}`",
                PathDisplay(&at)
            );
            self.error(&at, msg, "write a fraction of requests, e.g. `0.02` for 2%");
            return 0;
        }
        (v * 1e6).round() as u32
    }

    fn duration(&mut self, value: Option<&str>, at: Vec<Seg>) -> Option<u64> {
        let text = value?;
        match parse_duration_ms(text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                let msg = format!("`{}`: {e}", PathDisplay(&at));
                let help = e.help();
                self.error(&at, msg, &help);
                None
            }
        }
    }
}

fn convert(loaded: &Loaded<LLMProvider>, errors: &mut Vec<LoadError>) -> Option<ir::Provider> {
    let spec: &LLMProviderSpec = &loaded.object.spec;
    let mut c = Checker {
        loaded,
        errors,
        failed: false,
    };

    let kind = match spec.type_ {
        ProviderType::Openai => ir::ProviderKind::Openai,
        ProviderType::OpenaiCompatible => ir::ProviderKind::OpenaiCompatible,
        ProviderType::AzureOpenai => ir::ProviderKind::AzureOpenai,
        ProviderType::Anthropic => ir::ProviderKind::Anthropic,
        ProviderType::Gemini => ir::ProviderKind::Gemini,
        ProviderType::Mock => ir::ProviderKind::Mock,
    };
    match &spec.base_url {
        None if matches!(
            kind,
            ir::ProviderKind::OpenaiCompatible | ir::ProviderKind::AzureOpenai
        ) =>
        {
            let msg = format!(
                "a provider of type `{}` needs `spec.baseUrl`",
                kind.as_str()
            );
            c.error(
                &path(&["spec", "type"]),
                msg,
                "add the server's API URL, e.g. `baseUrl: https://api.example.com/v1`",
            );
        }
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            let msg = format!("`spec.baseUrl` must be an http or https URL, found `{url}`");
            c.error(
                &path(&["spec", "baseUrl"]),
                msg,
                "write the full URL, e.g. `https://api.example.com/v1`",
            );
        }
        _ => {}
    }

    let credential = credential(&mut c, loaded);

    if spec.models.is_empty() {
        c.error(
            &path(&["spec", "models"]),
            "`spec.models` is empty".into(),
            "list at least one model with its pricing",
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut models = Vec::with_capacity(spec.models.len());
    for (i, m) in spec.models.iter().enumerate() {
        let at = |rest: &[&str]| {
            let mut p = path(&["spec", "models"]);
            p.push(Seg::Index(i));
            p.extend(path(rest));
            p
        };
        if let Some(first) = seen.insert(&m.name, i) {
            let msg = format!(
                "model `{}` is listed twice (also `spec.models[{first}]`)",
                m.name
            );
            c.error(&at(&["name"]), msg, "list each model once");
        }
        if m.name.is_empty() {
            c.error(
                &at(&["name"]),
                "a model name must not be empty".into(),
                "write the provider's model name, e.g. `gpt-4o`",
            );
        }
        models.push(ir::Model {
            name: m.name.clone(),
            input_micro_usd_per_mtok: c.price(
                m.pricing.input_per_million,
                at(&["pricing", "inputPerMillion"]),
            ),
            output_micro_usd_per_mtok: c.price(
                m.pricing.output_per_million,
                at(&["pricing", "outputPerMillion"]),
            ),
            cached_input_micro_usd_per_mtok: m
                .pricing
                .cached_input_per_million
                .map(|d| c.price(d, at(&["pricing", "cachedInputPerMillion"]))),
            context_window: c.count(m.context_window, at(&["contextWindow"])),
            max_output_tokens: c.count(m.max_output_tokens, at(&["maxOutputTokens"])),
        });
    }

    let rate_limits = match &spec.rate_limits {
        Some(r) => ir::RateLimits {
            requests_per_minute: c.count(
                r.requests_per_minute,
                path(&["spec", "rateLimits", "requestsPerMinute"]),
            ),
            tokens_per_minute: c.count(
                r.tokens_per_minute,
                path(&["spec", "rateLimits", "tokensPerMinute"]),
            ),
        },
        None => ir::RateLimits::default(),
    };
    let timeouts = match &spec.timeouts {
        Some(t) => ir::ProviderTimeouts {
            connect_ms: c.duration(t.connect.as_deref(), path(&["spec", "timeouts", "connect"])),
            first_token_ms: c.duration(
                t.first_token.as_deref(),
                path(&["spec", "timeouts", "firstToken"]),
            ),
            total_ms: c.duration(t.total.as_deref(), path(&["spec", "timeouts", "total"])),
        },
        None => ir::ProviderTimeouts::default(),
    };

    let health_check = spec.health_check.as_ref().and_then(|h| {
        let interval = c.duration(
            Some(&h.interval),
            path(&["spec", "healthCheck", "interval"]),
        )?;
        if interval < 100 {
            c.error(
                &path(&["spec", "healthCheck", "interval"]),
                format!("a health check every {interval}ms is too often"),
                "use `100ms` or more, e.g. `30s`",
            );
            return None;
        }
        let timeout = match &h.timeout {
            Some(t) => c.duration(Some(t), path(&["spec", "healthCheck", "timeout"]))?,
            None => timeouts.first_token_ms.unwrap_or(10_000),
        };
        Some(ir::HealthCheck {
            interval_ms: interval,
            timeout_ms: timeout,
        })
    });

    let mock = match (&spec.mock, kind) {
        (Some(m), ir::ProviderKind::Mock) => Some(mock(&mut c, m)),
        (None, ir::ProviderKind::Mock) => {
            c.error(
                &path(&["spec", "type"]),
                "a provider of type `mock` needs `spec.mock`".into(),
                "add e.g. `mock: { latency: 400ms, ttft: 100ms, tokensPerSecond: 50 }`",
            );
            None
        }
        (Some(_), _) => {
            let msg = format!(
                "`spec.mock` is only for type `mock`, not `{}`",
                kind.as_str()
            );
            c.error(
                &path(&["spec", "mock"]),
                msg,
                "remove `mock`, or set `type: mock`",
            );
            None
        }
        (None, _) => None,
    };

    (!c.failed).then(|| ir::Provider {
        name: loaded.name().to_string(),
        kind,
        base_url: spec.base_url.clone(),
        credential,
        models,
        rate_limits,
        timeouts,
        api_version: spec.api_version.clone(),
        mock,
        health_check,
        responses_api: spec.responses_api.unwrap_or(false),
    })
}

fn credential(c: &mut Checker<'_>, loaded: &Loaded<LLMProvider>) -> Option<ir::Credential> {
    let creds = loaded.object.spec.credentials.as_ref()?;
    match (&creds.secret_ref, &creds.env) {
        (Some(s), None) => Some(ir::Credential::Secret {
            namespace: s
                .namespace
                .clone()
                .or_else(|| loaded.namespace().map(str::to_string)),
            name: s.name.clone(),
            key: s.key.clone(),
        }),
        (None, Some(var)) => Some(ir::Credential::Env { var: var.clone() }),
        (Some(_), Some(_)) => {
            let at = path(&["spec", "credentials"]);
            c.error(
                &at,
                "`spec.credentials` sets both `secretRef` and `env`".into(),
                "keep one of them",
            );
            None
        }
        (None, None) => {
            let at = path(&["spec", "credentials"]);
            c.error(
                &at,
                "`spec.credentials` is empty".into(),
                "set `secretRef: { name, key }` or `env: VARIABLE`, or remove `credentials`",
            );
            None
        }
    }
}

fn mock(c: &mut Checker<'_>, m: &MockSpec) -> ir::MockBehaviour {
    let at = |field: &str| path(&["spec", "mock", field]);
    ir::MockBehaviour {
        latency_ms: c.duration(m.latency.as_deref(), at("latency")).unwrap_or(0),
        ttft_ms: c.duration(m.ttft.as_deref(), at("ttft")).unwrap_or(0),
        tokens_per_second: c
            .count(m.tokens_per_second, at("tokensPerSecond"))
            .unwrap_or(0),
        error_rate_ppm: c.fraction(m.error_rate, at("errorRate")),
        rate_limit_rate_ppm: c.fraction(m.rate_limit_rate, at("rateLimitRate")),
        retry_after_ms: c
            .duration(m.retry_after.as_deref(), at("retryAfter"))
            .unwrap_or(1000),
        seed: c.count(m.seed, at("seed")).unwrap_or(0),
    }
}
