//! LLMProvider objects → the provider catalogue: unit conversions and located errors.

use switchyard_crds::{catalogue, load_str};
use switchyard_dsl::ir;

const GOOD: &str = "\
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: openai
  namespace: llm
spec:
  type: openai
  credentials:
    secretRef: { name: keys, key: openai }
  models:
    - name: gpt-4o
      pricing: { inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25 }
      contextWindow: 128000
      maxOutputTokens: 16384
    - name: gpt-4o-mini
      pricing: { inputPerMillion: 0.15, outputPerMillion: 0.6 }
  rateLimits: { requestsPerMinute: 5000, tokensPerMinute: 2000000 }
  timeouts: { connect: 5s, firstToken: 1500ms, total: 10m }
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: azure
spec:
  type: azure-openai
  baseUrl: https://example.openai.azure.com
  apiVersion: 2024-10-21
  credentials: { env: AZURE_KEY }
  models:
    - name: my-deployment
      pricing: { inputPerMillion: 0.0000015, outputPerMillion: 0 }
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: mock
spec:
  type: mock
  models:
    - name: m
      pricing: { inputPerMillion: 1, outputPerMillion: 2 }
  mock:
    latency: 400ms
    ttft: 0.5s
    tokensPerSecond: 80
    errorRate: 0.02
    rateLimitRate: 0.001
    seed: 7
";

#[test]
fn converts_units_and_sorts_by_name() {
    let config = load_str("p.yaml", GOOD).expect("loads");
    let providers = catalogue(&config).expect("valid");
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["azure", "mock", "openai"]);

    let openai = &providers[2];
    assert_eq!(openai.kind, ir::ProviderKind::Openai);
    assert_eq!(
        openai.credential,
        Some(ir::Credential::Secret {
            namespace: Some("llm".into()),
            name: "keys".into(),
            key: "openai".into()
        })
    );
    assert_eq!(
        openai.models[0],
        ir::Model {
            name: "gpt-4o".into(),
            input_micro_usd_per_mtok: 2_500_000,
            output_micro_usd_per_mtok: 10_000_000,
            cached_input_micro_usd_per_mtok: Some(1_250_000),
            context_window: Some(128_000),
            max_output_tokens: Some(16_384),
        }
    );
    assert_eq!(openai.models[1].input_micro_usd_per_mtok, 150_000);
    assert_eq!(openai.models[1].output_micro_usd_per_mtok, 600_000);
    assert_eq!(
        openai.models[1].cached_input_micro_usd_per_mtok, None,
        "no cached price: the input price applies"
    );
    assert_eq!(
        openai.rate_limits,
        ir::RateLimits {
            requests_per_minute: Some(5000),
            tokens_per_minute: Some(2_000_000)
        }
    );
    assert_eq!(
        openai.timeouts,
        ir::ProviderTimeouts {
            connect_ms: Some(5_000),
            first_token_ms: Some(1_500),
            total_ms: Some(600_000)
        }
    );
    assert_eq!(openai.mock, None);

    let azure = &providers[0];
    assert_eq!(azure.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(
        azure.base_url.as_deref(),
        Some("https://example.openai.azure.com")
    );
    assert_eq!(
        azure.credential,
        Some(ir::Credential::Env {
            var: "AZURE_KEY".into()
        })
    );
    assert_eq!(
        azure.models[0].input_micro_usd_per_mtok, 2,
        "1.5 micro-dollars rounds to 2"
    );

    assert_eq!(
        providers[1].mock,
        Some(ir::MockBehaviour {
            latency_ms: 400,
            ttft_ms: 500,
            tokens_per_second: 80,
            error_rate_ppm: 20_000,
            rate_limit_rate_ppm: 1_000,
            retry_after_ms: 1_000,
            seed: 7,
        })
    );
}

fn errors(text: &str) -> Vec<String> {
    let config = load_str("p.yaml", text).expect("loads");
    catalogue(&config)
        .expect_err("invalid")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn invalid_values_are_reported_at_their_line() {
    let text = "\
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: bad
spec:
  type: mock
  credentials: { secretRef: { name: k, key: a }, env: KEY }
  models:
    - name: m
      pricing: { inputPerMillion: -1, outputPerMillion: 2 }
    - name: m
      pricing:
        inputPerMillion: 1
        outputPerMillion: 2
      contextWindow: -5
  timeouts:
    connect: 5 seconds
  mock:
    errorRate: 1.5
";
    assert_eq!(
        errors(text),
        [
            "p.yaml:7:3: `spec.credentials` sets both `secretRef` and `env`\n  = help: keep one of them",
            "p.yaml:10:18: `spec.models[0].pricing.inputPerMillion` must be a price of 0 or more, found `-1`\n  = help: write dollars per million tokens, e.g. `2.5`",
            "p.yaml:11:7: model `m` is listed twice (also `spec.models[0]`)\n  = help: list each model once",
            "p.yaml:15:7: `spec.models[1].contextWindow` must not be negative, found `-5`\n  = help: write a whole number of 0 or more",
            "p.yaml:17:5: `spec.timeouts.connect`: expected a duration like `500ms`, `2s` or `1m`, found `5 seconds`\n  = help: durations take a unit: `ms`, `s`, `m` (minutes), `h` or `d`, e.g. `250ms` or `1.5h`",
            "p.yaml:19:5: `spec.mock.errorRate` must be between 0 and 1, found `1.5`\n  = help: write a fraction of requests, e.g. `0.02` for 2%",
        ]
    );
}

#[test]
fn type_specific_requirements() {
    let doc = |name: &str, spec: &str| {
        format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: {name}\nspec:\n{spec}  models:\n    - name: m\n      pricing: {{ inputPerMillion: 1, outputPerMillion: 1 }}\n"
        )
    };
    let text = [
        doc("m", "  type: mock\n"),
        doc("c", "  type: openai-compatible\n"),
        doc("o", "  type: openai\n  mock: { seed: 1 }\n"),
        doc("u", "  type: openai\n  baseUrl: api.example.com\n"),
    ]
    .join("---\n");
    assert_eq!(
        errors(&text),
        [
            "p.yaml:6:3: a provider of type `mock` needs `spec.mock`\n  = help: add e.g. `mock: { latency: 400ms, ttft: 100ms, tokensPerSecond: 50 }`",
            "p.yaml:16:3: a provider of type `openai-compatible` needs `spec.baseUrl`\n  = help: add the server's API URL, e.g. `baseUrl: https://api.example.com/v1`",
            "p.yaml:27:3: `spec.mock` is only for type `mock`, not `openai`\n  = help: remove `mock`, or set `type: mock`",
            "p.yaml:38:3: `spec.baseUrl` must be an http or https URL, found `api.example.com`\n  = help: write the full URL, e.g. `https://api.example.com/v1`",
        ]
    );
}

#[test]
fn provider_names_are_unique_across_namespaces() {
    let doc = |ns: &str| {
        format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: p\n  namespace: {ns}\nspec:\n  type: openai\n  models:\n    - name: m\n      pricing: {{ inputPerMillion: 1, outputPerMillion: 1 }}\n"
        )
    };
    let text = format!("{}---\n{}", doc("a"), doc("b"));
    assert_eq!(
        errors(&text),
        [
            "p.yaml:15:3: provider name `p` is already used\n  = help: `a/p` at p.yaml:1 has the same name; policies name providers without a namespace, so names must be unique"
        ]
    );
}

#[test]
fn health_checks_convert_and_refuse_silly_intervals() {
    let with = |health: &str| {
        format!(
            "\
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: p
spec:
  type: openai
  models:
    - name: m
      pricing: {{ inputPerMillion: 1, outputPerMillion: 2 }}
  timeouts: {{ firstToken: 3s }}
  healthCheck: {health}
"
        )
    };
    let providers =
        catalogue(&load_str("p.yaml", &with("{ interval: 30s }")).expect("loads")).expect("valid");
    assert_eq!(
        providers[0].health_check,
        Some(ir::HealthCheck {
            interval_ms: 30_000,
            timeout_ms: 3_000
        }),
        "the timeout defaults to the first-token timeout"
    );
    let text = with("{ interval: 1m, timeout: 500ms }");
    let providers = catalogue(&load_str("p.yaml", &text).expect("loads")).expect("valid");
    assert_eq!(
        providers[0].health_check,
        Some(ir::HealthCheck {
            interval_ms: 60_000,
            timeout_ms: 500
        })
    );
    assert_eq!(
        errors(&with("{ interval: 10ms }")),
        [
            "p.yaml:11:18: a health check every 10ms is too often\n  = help: use `100ms` or more, e.g. `30s`"
        ]
    );
    let providers = catalogue(&load_str("p.yaml", GOOD).expect("loads")).expect("valid");
    assert!(
        providers.iter().all(|p| p.health_check.is_none()),
        "off unless set"
    );
}
