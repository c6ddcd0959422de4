//! Server settings: the config file (YAML or JSON), command-line flags, and how they merge.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::fault::{Fault, FaultSpec};
use crate::{Error, Result};

/// How a healthy request is answered: timing and length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Delay before the response headers, in milliseconds.
    pub latency_ms: u64,
    /// Delay between the headers and the first body chunk (time to first token).
    pub ttft_ms: u64,
    /// Pace of generated tokens after the first; 0 sends them as fast as possible.
    pub tokens_per_second: f64,
    /// Tokens in a completion, before the request's `max_tokens` cap.
    pub completion_tokens: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            ttft_ms: 0,
            tokens_per_second: 0.0,
            completion_tokens: 16,
        }
    }
}

/// A partial [`Behaviour`], as scripts send it: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourPatch {
    /// See [`Behaviour::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`Behaviour::ttft_ms`].
    pub ttft_ms: Option<u64>,
    /// See [`Behaviour::tokens_per_second`].
    pub tokens_per_second: Option<f64>,
    /// See [`Behaviour::completion_tokens`].
    pub completion_tokens: Option<u32>,
}

impl Behaviour {
    /// This behaviour with the patch's fields applied.
    pub fn patched(&self, patch: &BehaviourPatch) -> Self {
        Self {
            latency_ms: patch.latency_ms.unwrap_or(self.latency_ms),
            ttft_ms: patch.ttft_ms.unwrap_or(self.ttft_ms),
            tokens_per_second: patch.tokens_per_second.unwrap_or(self.tokens_per_second),
            completion_tokens: patch.completion_tokens.unwrap_or(self.completion_tokens),
        }
    }
}

/// Everything a mock server needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Reported in the `x-mock-server` header of every response.
    pub name: String,
    /// Seed for all generated text, vectors and ids.
    pub seed: u64,
    /// Timing and length of healthy answers.
    pub behaviour: Behaviour,
    /// Embedding length when the request names no `dimensions`.
    pub embedding_dimensions: usize,
    /// Models listed by `GET /v1/models` (any model name is accepted by the other endpoints).
    pub models: Vec<String>,
    /// Faults queued at start, as if posted to `/_mock/script`.
    pub faults: Vec<FaultSpec>,
    /// A fault applied to every request that the queue does not cover.
    pub default_fault: Option<Fault>,
    /// Answer requests without the format's credentials as the real API does (OpenAI:
    /// `authorization`; Anthropic: `x-api-key` and `anthropic-version`; Gemini:
    /// `x-goog-api-key` or `key=`).
    pub require_auth: bool,
    /// Report the longest run of leading chat messages this server has already seen as
    /// cached input (`usage.prompt_tokens_details.cached_tokens`), like OpenAI's automatic
    /// prompt caching; see [`crate::prompt_cache`].
    pub prompt_cache: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: "mock".to_owned(),
            seed: 0,
            behaviour: Behaviour::default(),
            embedding_dimensions: 1536,
            models: vec![
                "gpt-4o".to_owned(),
                "gpt-4o-mini".to_owned(),
                "text-embedding-3-small".to_owned(),
            ],
            faults: Vec::new(),
            default_fault: None,
            require_auth: false,
            prompt_cache: false,
        }
    }
}

impl Config {
    /// Parse a config file's text; YAML, of which JSON is a subset.
    pub fn from_text(text: &str) -> std::result::Result<Self, String> {
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    }

    /// Read and parse a config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text).map_err(|message| Error::ParseConfig {
            path: path.to_owned(),
            message,
        })
    }
}

/// Command-line flags of `switchyard-mock`. Flags override the config file.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "switchyard-mock",
    version,
    about = "A fake LLM provider (OpenAI, Anthropic and Gemini wire formats) for tests"
)]
pub struct Args {
    /// Config file (YAML or JSON); flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:0].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Name reported in the `x-mock-server` response header [default: mock].
    #[arg(long)]
    pub name: Option<String>,
    /// Seed for generated text, embeddings and ids [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Delay before response headers, in milliseconds [default: 0].
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Time to first token, in milliseconds [default: 0].
    #[arg(long, value_name = "MS")]
    pub ttft_ms: Option<u64>,
    /// Token pace after the first token; 0 means unpaced [default: 0].
    #[arg(long, value_name = "N")]
    pub tokens_per_second: Option<f64>,
    /// Tokens per completion, before `max_tokens` [default: 16].
    #[arg(long, value_name = "N")]
    pub completion_tokens: Option<u32>,
    /// Embedding length when the request names none [default: 1536].
    #[arg(long, value_name = "N")]
    pub embedding_dimensions: Option<usize>,
    /// A model for `GET /v1/models`; repeat for more (replaces the default list).
    #[arg(long = "model", value_name = "ID")]
    pub models: Vec<String>,
    /// A fault applied to every request, as JSON, e.g. '{"kind":"status","status":503}'.
    #[arg(long, value_name = "JSON", value_parser = Fault::from_json)]
    pub default_fault: Option<Fault>,
    /// Reject requests without the wire format's credentials headers, as the real APIs do.
    #[arg(long)]
    pub require_auth: bool,
    /// Report chat prompts this server has seen before as cached input, like OpenAI.
    #[arg(long)]
    pub prompt_cache: bool,
}

impl Args {
    /// The config file (or defaults) with the flags laid over it.
    pub fn into_config(self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let b = &mut config.behaviour;
        set(&mut config.listen, self.listen);
        set(&mut config.name, self.name);
        set(&mut config.seed, self.seed);
        set(&mut b.latency_ms, self.latency_ms);
        set(&mut b.ttft_ms, self.ttft_ms);
        set(&mut b.tokens_per_second, self.tokens_per_second);
        set(&mut b.completion_tokens, self.completion_tokens);
        set(&mut config.embedding_dimensions, self.embedding_dimensions);
        if !self.models.is_empty() {
            config.models = self.models;
        }
        if self.default_fault.is_some() {
            config.default_fault = self.default_fault;
        }
        config.require_auth |= self.require_auth;
        config.prompt_cache |= self.prompt_cache;
        Ok(config)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mock.yaml");
        std::fs::write(
            &path,
            "name: from-file\nseed: 9\nbehaviour:\n  ttft_ms: 250\n\
             faults:\n  - kind: rate_limit\n    retry_after: 3\n",
        )
        .expect("write config");
        let args = Args::parse_from([
            "switchyard-mock",
            "--config",
            path.to_str().expect("utf-8 path"),
            "--name",
            "from-flag",
            "--completion-tokens",
            "4",
        ]);
        let config = args.into_config().expect("valid config");
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.seed, 9);
        assert_eq!(config.behaviour.ttft_ms, 250);
        assert_eq!(config.behaviour.completion_tokens, 4);
        assert_eq!(config.faults.len(), 1);
    }

    #[test]
    fn require_auth_from_flag_or_file() {
        assert!(!Config::default().require_auth);
        let args = Args::parse_from(["switchyard-mock", "--require-auth"]);
        assert!(args.into_config().expect("valid").require_auth);
        let config = Config::from_text("require_auth: true").expect("valid");
        assert!(config.require_auth);
    }

    #[test]
    fn json_config_and_unknown_fields() {
        let config =
            Config::from_text(r#"{"name":"a","embedding_dimensions":8}"#).expect("json is yaml");
        assert_eq!(config.embedding_dimensions, 8);
        assert!(Config::from_text("nmae: typo").is_err());
    }

    #[test]
    fn behaviour_patch_keeps_absent_fields() {
        let b = Behaviour::default().patched(&BehaviourPatch {
            ttft_ms: Some(5),
            ..BehaviourPatch::default()
        });
        assert_eq!(b.ttft_ms, 5);
        assert_eq!(b.completion_tokens, 16);
    }
}
