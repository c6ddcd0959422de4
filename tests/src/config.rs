//! A standalone config folder in a temp dir: `LLMProvider` and `RoutePolicy` documents for
//! `switchyard-proxy --config DIR`, rewritten atomically so a hot-reload never sees half a file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file that [`ConfigDir::add_provider`] rewrites.
pub const PROVIDERS_FILE: &str = "providers.yaml";
/// The file that [`ConfigDir::write_policy`] rewrites.
pub const ROUTES_FILE: &str = "routes.yaml";

/// `spec.type` of an OpenAI-style provider.
pub const OPENAI_COMPATIBLE: &str = "openai-compatible";
/// `spec.type` of an Anthropic Messages provider.
pub const ANTHROPIC: &str = "anthropic";
/// `spec.type` of a Google Gemini provider.
pub const GEMINI: &str = "gemini";

/// One `LLMProvider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// `metadata.name`, the `provider` half of `provider/model` in policies.
    pub name: String,
    /// `spec.type`: [`OPENAI_COMPATIBLE`], [`ANTHROPIC`] or [`GEMINI`].
    pub kind: String,
    /// `spec.baseUrl`, e.g. `http://127.0.0.1:PORT/v1` (OpenAI-style) or
    /// `http://127.0.0.1:PORT` (Anthropic and Gemini: the proxy adds `/v1/messages` or
    /// `/v1beta/models/...`).
    pub base_url: String,
    /// The model names it serves.
    pub models: Vec<String>,
    /// `spec.credentials.env`, if the key comes from an environment variable.
    pub key_env: Option<String>,
}

/// A temp folder holding the config; removed on drop.
#[derive(Debug)]
pub struct ConfigDir {
    root: tempfile::TempDir,
    dir: PathBuf,
    providers: Vec<Provider>,
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    /// An empty config folder.
    ///
    /// # Panics
    ///
    /// When the temp dir cannot be created.
    pub fn new() -> ConfigDir {
        let root = tempfile::Builder::new()
            .prefix("switchyard-config-")
            .tempdir()
            .expect("create a temp dir");
        let dir = root.path().join("config");
        std::fs::create_dir(&dir).expect("create the config folder");
        ConfigDir {
            root,
            dir,
            providers: Vec::new(),
        }
    }

    /// The folder to pass as `--config`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Adds an `openai-compatible` provider at `base_url` serving `models` and rewrites
    /// `providers.yaml`.
    pub fn add_provider(&mut self, name: &str, base_url: &str, models: &[&str]) -> &mut Self {
        self.add(Provider {
            name: name.into(),
            kind: OPENAI_COMPATIBLE.into(),
            base_url: base_url.into(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            key_env: None,
        })
    }

    /// Adds a provider of `kind` ([`ANTHROPIC`], [`GEMINI`], ...) at `base_url` serving
    /// `models`, its key read from the environment variable `key_env`, and rewrites
    /// `providers.yaml`.
    pub fn add_typed_provider(
        &mut self,
        name: &str,
        kind: &str,
        base_url: &str,
        models: &[&str],
        key_env: Option<&str>,
    ) -> &mut Self {
        self.add(Provider {
            name: name.into(),
            kind: kind.into(),
            base_url: base_url.into(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            key_env: key_env.map(str::to_owned),
        })
    }

    /// Adds any provider and rewrites `providers.yaml`.
    pub fn add(&mut self, provider: Provider) -> &mut Self {
        self.providers.push(provider);
        let docs: Vec<String> = self.providers.iter().map(provider_yaml).collect();
        self.write_file(PROVIDERS_FILE, &docs.join("---\n"));
        self
    }

    /// Writes `routes.yaml`: one `RoutePolicy` named `test` with this policy text.
    pub fn write_policy(&self, policy: &str) {
        self.write_file(ROUTES_FILE, &route_policy_yaml("test", policy));
    }

    /// Replaces `file` in the folder atomically (write a sibling outside it, then rename).
    ///
    /// # Panics
    ///
    /// On I/O errors.
    pub fn write_file(&self, file: &str, contents: &str) {
        let scratch = self.root.path().join(format!("{file}.next"));
        std::fs::write(&scratch, contents).expect("write the scratch file");
        std::fs::rename(&scratch, self.dir.join(file)).expect("move it into the config folder");
    }
}

/// The `LLMProvider` document of `provider`.
pub fn provider_yaml(provider: &Provider) -> String {
    let mut yaml = format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: {}\nspec:\n  type: {}\n  baseUrl: {}\n",
        provider.name, provider.kind, provider.base_url
    );
    if let Some(env) = &provider.key_env {
        let _ = writeln!(yaml, "  credentials:\n    env: {env}");
    }
    yaml.push_str("  models:\n");
    for model in &provider.models {
        let _ = writeln!(
            yaml,
            "    - name: {model}\n      pricing: {{ inputPerMillion: 1, outputPerMillion: 2 }}"
        );
    }
    yaml
}

/// A `RoutePolicy` document named `name` carrying `policy` as `spec.policy`.
pub fn route_policy_yaml(name: &str, policy: &str) -> String {
    let mut yaml = format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata:\n  name: {name}\nspec:\n  policy: |\n"
    );
    for line in policy.lines() {
        if line.trim().is_empty() {
            yaml.push('\n');
        } else {
            let _ = writeln!(yaml, "    {line}");
        }
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_text_is_an_indented_block() {
        let yaml = route_policy_yaml("p", "route a {\n  use x/y\n}\n");
        assert!(
            yaml.ends_with("  policy: |\n    route a {\n      use x/y\n    }\n"),
            "{yaml}"
        );
    }

    #[test]
    fn typed_providers_carry_their_type_and_key() {
        let mut config = ConfigDir::new();
        config.add_typed_provider("c", ANTHROPIC, "http://127.0.0.1:1", &["m"], Some("K"));
        let yaml = std::fs::read_to_string(config.path().join(PROVIDERS_FILE)).expect("written");
        assert!(
            yaml.contains("  type: anthropic\n  baseUrl: http://127.0.0.1:1\n"),
            "{yaml}"
        );
        assert!(yaml.contains("  credentials:\n    env: K\n"), "{yaml}");
    }

    #[test]
    fn files_land_in_the_folder_and_vanish_with_it() {
        let mut config = ConfigDir::new();
        config.add_provider("a", "http://127.0.0.1:1/v1", &["m"]);
        config.write_policy("route r {\n  use a/m\n}\n");
        let dir = config.path().to_path_buf();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("listable")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        drop(config);
        assert!(!dir.exists());
    }
}
