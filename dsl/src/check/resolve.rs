//! Targets against the provider catalogue, and "did you mean" suggestions for every word list.

use super::{Cx, ResolvedTarget, list};
use crate::ast::TargetRef;

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub(crate) fn suggestion<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `did you mean `x`? ` or nothing, to start a help line.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    suggestion(word, candidates).map_or_else(String::new, |s| format!("did you mean `{s}`? "))
}

impl Cx<'_> {
    /// Resolves `provider/model`, reporting an unknown provider or model.
    pub(super) fn target(&mut self, t: &TargetRef) -> Option<ResolvedTarget> {
        let Some(provider) = self
            .catalogue
            .iter()
            .position(|p| p.name == t.provider.name)
        else {
            let mut known: Vec<&str> = self.catalogue.iter().map(|p| p.name.as_str()).collect();
            known.sort_unstable();
            known.dedup();
            let help = if known.is_empty() {
                "the provider catalogue is empty; define an `LLMProvider` first".to_string()
            } else {
                format!(
                    "{}known providers: {}",
                    did_you_mean(&t.provider.name, known.iter().copied()),
                    list(known.iter().copied())
                )
            };
            self.error(
                t.provider.span,
                format!("unknown provider `{}`", t.provider.name),
                "not in the provider catalogue",
                help,
            );
            return None;
        };
        let p = &self.catalogue[provider];
        let Some(model) = p.models.iter().position(|m| m.name == t.model) else {
            let names = || p.models.iter().map(|m| m.name.as_str());
            let help = if p.models.is_empty() {
                format!(
                    "provider `{}` lists no models; add them to its `LLMProvider`",
                    p.name
                )
            } else {
                format!(
                    "{}`{}` serves {}",
                    did_you_mean(&t.model, names()),
                    p.name,
                    list(names())
                )
            };
            let label = format!("not a model of `{}`", p.name);
            self.error(
                t.model_span,
                format!("unknown model `{}` for provider `{}`", t.model, p.name),
                &label,
                help,
            );
            return None;
        };
        Some(ResolvedTarget { provider, model })
    }

    /// Resolves a list of targets, keeping the ones that resolve.
    pub(super) fn targets(&mut self, ts: &[TargetRef]) -> Vec<ResolvedTarget> {
        ts.iter().filter_map(|t| self.target(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(suggestion("opnai", ["anthropic", "openai"]), Some("openai"));
        assert_eq!(suggestion("zzz", ["anthropic", "openai"]), None);
        assert_eq!(suggestion("ttf", ["ttft", "latency"]), Some("ttft"));
        assert_eq!(suggestion("modle", ["model", "key"]), Some("model"));
    }
}
