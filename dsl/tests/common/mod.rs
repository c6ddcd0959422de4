//! The provider catalogue the dsl integration tests compile against.

use switchyard_dsl::ir::{Provider, ProviderKind};

pub fn provider(name: &str, kind: ProviderKind, models: &[(&str, u64, u64)]) -> Provider {
    Provider::priced(name, kind, models)
}

/// openai, deepseek, anthropic, mistral and the rest the tests name, with real-looking prices.
pub fn catalogue() -> Vec<Provider> {
    vec![
        provider(
            "openai",
            ProviderKind::Openai,
            &[
                ("gpt-4o", 2_500_000, 10_000_000),
                ("gpt-4o-mini", 150_000, 600_000),
            ],
        ),
        provider(
            "deepseek",
            ProviderKind::OpenaiCompatible,
            &[("deepseek-chat", 270_000, 1_100_000)],
        ),
        provider(
            "anthropic",
            ProviderKind::Anthropic,
            &[("claude-sonnet-4", 3_000_000, 15_000_000)],
        ),
        provider(
            "mistral",
            ProviderKind::OpenaiCompatible,
            &[("mistral-large", 2_000_000, 6_000_000)],
        ),
    ]
}
