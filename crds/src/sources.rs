//! Policy text of RoutePolicies and Budgets as compiler [`Source`]s, and the whole compile.

use switchyard_dsl::{Compiled, Source, SourceKind};

use crate::load::policy::policy_position;
use crate::load::{Config, LoadErrors, Loaded, Origin};
use crate::{Budget, RoutePolicy};

/// Every policy text that serves, in evaluation order: RoutePolicies not in shadow mode by
/// `spec.priority` (higher first, default 0) then `namespace/name`, then Budgets by
/// `namespace/name`. Each [`Source`] maps positions in its text to the YAML file's lines and
/// columns.
pub fn sources(config: &Config) -> Vec<Source> {
    ordered(config, false)
}

/// The policy texts as they would serve with every `mode: Shadow` RoutePolicy promoted to
/// `Active`: what proxies decide beside the live policies. `None` when no policy is in shadow
/// mode.
pub fn shadow_sources(config: &Config) -> Option<Vec<Source>> {
    config
        .route_policies
        .iter()
        .any(|r| r.object.spec.is_shadow())
        .then(|| ordered(config, true))
}

fn ordered(config: &Config, with_shadow: bool) -> Vec<Source> {
    let mut routes: Vec<&Loaded<RoutePolicy>> = config
        .route_policies
        .iter()
        .filter(|r| with_shadow || !r.object.spec.is_shadow())
        .collect();
    routes.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.object.spec.priority.unwrap_or(0)),
            sort_key(r),
        )
    });
    let mut budgets: Vec<&Loaded<Budget>> = config.budgets.iter().collect();
    budgets.sort_by_key(|b| sort_key(b));
    let routes = routes.into_iter().map(|r| {
        source(
            r.qualified_name(),
            &r.origin,
            &r.object.spec.policy,
            SourceKind::Routes,
        )
    });
    let budgets = budgets.into_iter().map(|b| {
        source(
            b.qualified_name(),
            &b.origin,
            &b.object.spec.policy,
            SourceKind::Budgets,
        )
    });
    routes.chain(budgets).collect()
}

fn sort_key<T: kube::Resource>(loaded: &Loaded<T>) -> (String, String) {
    (
        loaded.namespace().unwrap_or_default().to_string(),
        loaded.name().to_string(),
    )
}

fn source(origin_name: String, origin: &Origin, text: &str, kind: SourceKind) -> Source {
    let position = policy_position(origin, text);
    Source {
        file: origin.file.clone(),
        origin: origin_name,
        kind,
        text: text.to_string(),
        line_offset: position.line_offset,
        column_offset: position.column_offset,
    }
}

/// Builds the catalogue and compiles every policy against it: `dsl::compile(&sources(config),
/// &catalogue(config)?)`. Errors in the LLMProviders come back as [`LoadErrors`] (policies are
/// not compiled then: every provider reference would look wrong). Render the diagnostics of
/// the result with `switchyard_dsl::render_all(&compiled.diagnostics, &sources(config))`.
pub fn compile(config: &Config) -> Result<Compiled, LoadErrors> {
    let catalogue = crate::catalogue(config).map_err(LoadErrors)?;
    Ok(switchyard_dsl::compile(&sources(config), &catalogue))
}

/// [`compile`] of [`shadow_sources`]: the shadow snapshot, and the diagnostics a promotion
/// would meet. `None` when no policy is in shadow mode.
pub fn compile_shadow(config: &Config) -> Option<Result<Compiled, LoadErrors>> {
    let sources = shadow_sources(config)?;
    Some(
        crate::catalogue(config)
            .map_err(LoadErrors)
            .map(|catalogue| switchyard_dsl::compile(&sources, &catalogue)),
    )
}
