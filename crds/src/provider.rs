//! `LLMProvider`: one upstream model provider, its models and prices, credentials and limits.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::{ObjectStatus, describe_conditions};

/// The schema pattern of a duration string (`5s`, `1500ms`, `2m`, `1.5h`, `1d`), as the
/// compiler reads them. The API server enforces it at admission.
pub const DURATION: &str = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$";

/// An upstream LLM provider (OpenAI, Anthropic, an OpenAI-compatible server, the built-in mock,
/// ...) and the models it serves. Policies name its models as `<metadata.name>/<model>`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "LLMProvider",
    plural = "llmproviders",
    singular = "llmprovider",
    shortname = "llmp",
    category = "switchyard",
    namespaced,
    status = "LLMProviderStatus",
    derive = "PartialEq",
    doc = "An upstream LLM provider and the models it serves; policies refer to its models as `<name>/<model>`.",
    printcolumn = r#"{"name":"Type", "type":"string", "description":"Provider API type", "jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready", "type":"string", "description":"Whether the provider was accepted into the catalogue", "jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'openai-compatible' || has(self.baseUrl)",
        "message": "a provider of type `openai-compatible` needs `baseUrl`, e.g. `https://api.example.com/v1`",
        "fieldPath": ".baseUrl",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'azure-openai' || has(self.baseUrl)",
        "message": "a provider of type `azure-openai` needs `baseUrl`, e.g. `https://my-resource.openai.azure.com`",
        "fieldPath": ".baseUrl",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'mock' || has(self.mock)",
        "message": "a provider of type `mock` needs `mock`, e.g. `mock: { latency: 400ms }`",
        "fieldPath": ".mock",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type == 'mock' || !has(self.mock)",
        "message": "`mock` is only for providers of type `mock`: remove it or set `type: mock`",
        "fieldPath": ".mock",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct LLMProviderSpec {
    /// Which API the provider speaks: `openai`, `openai-compatible` (DeepSeek, Mistral, Groq,
    /// vLLM, Ollama, ...; needs `baseUrl`), `azure-openai` (needs `baseUrl` and `apiVersion`),
    /// `anthropic`, `gemini`, or `mock` (built in, no network; needs `mock`).
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// API base URL, e.g. `https://api.deepseek.com/v1`. Defaults to the public endpoint of
    /// `type`; required for `openai-compatible` and `azure-openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    pub base_url: Option<String>,
    /// Where the API key comes from: a key of a Secret, or an environment variable of the proxy.
    /// Set exactly one. Not needed for `mock` or for servers without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Azure OpenAI `api-version` query parameter, e.g. `2024-10-21`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub api_version: Option<String>,
    /// The models this provider serves, with their prices. Policies may only name these.
    /// At least one; each name once.
    #[schemars(length(min = 1))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub models: Vec<ModelSpec>,
    /// The provider account's rate limits; the proxy keeps below them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimitsSpec>,
    /// Default deadlines for calls to this provider; a route's `timeout` overrides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsSpec>,
    /// Behaviour of the built-in mock provider; required when `type` is `mock`, not allowed
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockSpec>,
    /// Active health checks: the proxy sends a one-token streamed completion to each of this
    /// provider's models that a route uses, every `interval`, and counts the result like a
    /// request (time to first token, errors). Ejected or slow targets are then seen to
    /// recover without client requests as probes. Off unless set; each check costs a few
    /// tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Whether an `openai-compatible` server also speaks OpenAI's Responses API
    /// (`POST {baseUrl}/responses`): Responses requests then pass through as the client sent
    /// them instead of being translated to chat completions. Default false. `openai` and
    /// `azure-openai` providers always get them passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses_api: Option<bool>,
}

/// Schedule of a provider's active health checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// Time between two checks of one model, e.g. `30s`; at least `100ms`.
    #[schemars(regex(pattern = DURATION))]
    pub interval: String,
    /// Time a check may take before it counts as a timeout, e.g. `10s`. Default: the
    /// provider's `timeouts.firstToken`, else `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub timeout: Option<String>,
}

/// The API a provider speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderType {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Anthropic,
    Gemini,
    Mock,
}

/// Where a provider's API key comes from. Never the key itself. Exactly one of `secretRef` and
/// `env`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.secretRef) != has(self.env)",
        "message": "`credentials` sets exactly one of `secretRef` and `env`"
    }
]))]
pub struct Credentials {
    /// A key of a Kubernetes Secret (in a standalone config folder: a `kind: Secret` document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The name of an environment variable of the proxy process that holds the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
}

/// A reference to one key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret's `data` or `stringData`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// The Secret's namespace; defaults to the LLMProvider's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One model a provider serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// The provider's model name as sent upstream (for Azure OpenAI, the deployment name),
    /// e.g. `gpt-4o` or `meta-llama/Llama-3-70b`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Prices in dollars per million tokens; used by `cheapest of` and by dollar budgets.
    pub pricing: Pricing,
    /// The model's context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub context_window: Option<i64>,
    /// The most output tokens one response may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_output_tokens: Option<i64>,
}

/// A model's list prices.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// Dollars per million input (prompt) tokens, e.g. `2.5`.
    #[schemars(range(min = 0))]
    pub input_per_million: f64,
    /// Dollars per million output (completion) tokens, e.g. `10`.
    #[schemars(range(min = 0))]
    pub output_per_million: f64,
    /// Dollars per million input tokens read from the provider's prompt cache, e.g. `1.25`
    /// (OpenAI's cached input, Anthropic's cache reads, Gemini's cached content). Budgets
    /// charge cached input at this price; without it, at `inputPerMillion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cached_input_per_million: Option<f64>,
}

/// The provider account's rate limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitsSpec {
    /// Requests per minute the account allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_minute: Option<i64>,
    /// Tokens (input + output) per minute the account allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_minute: Option<i64>,
}

/// Deadlines for calls to a provider, as durations like `5s`, `1500ms` or `2m`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSpec {
    /// Time allowed to open the connection (TCP + TLS), e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub connect: Option<String>,
    /// Time allowed until the first token (or the response header), e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub first_token: Option<String>,
    /// Time allowed for the whole request, e.g. `600s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub total: Option<String>,
}

/// How the built-in mock provider behaves. Deterministic for a given `seed`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MockSpec {
    /// Total time of a non-streamed response, e.g. `400ms`. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub latency: Option<String>,
    /// Time to the first token, e.g. `120ms`. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub ttft: Option<String>,
    /// Streaming speed after the first token. Default `0`: the whole response at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_second: Option<i64>,
    /// Fraction of requests (0 to 1) answered with a server error, e.g. `0.02`. Default `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub error_rate: Option<f64>,
    /// Fraction of requests (0 to 1) answered with `429 Too Many Requests`. Default `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub rate_limit_rate: Option<f64>,
    /// `Retry-After` sent with a mock 429, e.g. `1s`. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub retry_after: Option<String>,
    /// Seed of the mock's random choices. Default `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// What the operator observed about an `LLMProvider`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = provider_conditions)]
pub struct LLMProviderStatus {
    /// Conditions, generation and snapshot fields, at the top level of the status.
    #[serde(flatten)]
    pub object: ObjectStatus,
}

/// A provider is not compiled: its conditions are `Accepted` and `Applied` only.
fn provider_conditions(schema: &mut schemars::Schema) {
    describe_conditions(
        schema,
        "`Accepted` (valid and in the catalogue, credentials resolved) and `Applied`.",
    );
}
