//! Status of each object from a compile [`Outcome`], the live [`Publication`] and the pods'
//! [`Rollout`]: the `Accepted`, `Compiled` and `Applied` conditions and the counters.
//!
//! Pure functions. A condition keeps its `lastTransitionTime` while its status is unchanged, so
//! reconciling twice yields equal statuses and no second write.

use switchyard_crds::status::{condition_status, condition_type};
use switchyard_crds::{Condition, ObjectStatus, PolicyDiagnostic};

use crate::compile::{ObjectKey, Outcome, render};
use crate::publish::{Publication, Rollout};

/// What a status is computed from.
#[derive(Debug)]
pub struct Observed<'a> {
    pub key: &'a ObjectKey,
    pub generation: i64,
    pub outcome: &'a Outcome,
    pub live: Option<&'a Publication>,
    pub rollout: Option<Rollout>,
    /// The conditions currently stored, for their transition times.
    pub previous: &'a [Condition],
    /// Budget usage aggregated over the pods (empty for other kinds).
    pub usage: &'a [crate::usage::Counter],
    /// Shadow counts summed over the pods on the live version (RoutePolicies only).
    pub shadow: Option<&'a switchyard_crds::ShadowStatus>,
    pub now: String,
}

fn condition(
    obs: &Observed<'_>,
    type_: &str,
    ok: Option<bool>,
    reason: &str,
    message: String,
) -> Condition {
    let status = match ok {
        Some(true) => condition_status::TRUE,
        Some(false) => condition_status::FALSE,
        None => condition_status::UNKNOWN,
    };
    let last_transition_time = obs
        .previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| obs.now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time,
        observed_generation: Some(obs.generation),
    }
}

/// `Applied`, the snapshot fields and `appliedPods`, shared by all kinds.
fn applied(obs: &Observed<'_>, status: &mut ObjectStatus, usable: bool) {
    let Some(live) = obs.live else {
        status.conditions.push(condition(
            obs,
            condition_type::APPLIED,
            Some(false),
            "NotPublished",
            "no snapshot has been published yet".into(),
        ));
        return;
    };
    status.snapshot_version = i64::try_from(live.version).ok();
    status.snapshot_hash = Some(live.hash.clone());
    let rollout = obs.rollout.clone().unwrap_or(Rollout {
        applied: 0,
        connected: 0,
        refused: Vec::new(),
    });
    status.applied_pods = Some(rollout.ratio());
    let in_live = live.generations.get(obs.key) == Some(&obs.generation);
    let c = if !usable || !in_live {
        condition(
            obs,
            condition_type::APPLIED,
            Some(false),
            "NotPublished",
            format!(
                "generation {} is not in the live snapshot version {}; the previous snapshot keeps serving",
                obs.generation, live.version
            ),
        )
    } else if !rollout.refused.is_empty() {
        condition(
            obs,
            condition_type::APPLIED,
            Some(false),
            "Refused",
            format!(
                "snapshot version {} refused by {}",
                live.version,
                rollout.refused.join(", ")
            ),
        )
    } else if rollout.connected > 0 && rollout.applied == rollout.connected {
        condition(
            obs,
            condition_type::APPLIED,
            Some(true),
            "RolledOut",
            format!(
                "{} proxy pods run snapshot version {}",
                rollout.ratio(),
                live.version
            ),
        )
    } else if rollout.connected == 0 {
        condition(
            obs,
            condition_type::APPLIED,
            Some(false),
            "NoProxies",
            format!(
                "snapshot version {} published; no proxy pod is connected",
                live.version
            ),
        )
    } else {
        condition(
            obs,
            condition_type::APPLIED,
            Some(false),
            "RollingOut",
            format!(
                "{} proxy pods run snapshot version {}",
                rollout.ratio(),
                live.version
            ),
        )
    };
    status.conditions.push(c);
}

/// Status of an `LLMProvider`.
pub fn provider(obs: &Observed<'_>) -> ObjectStatus {
    let mut status = ObjectStatus {
        observed_generation: Some(obs.generation),
        ..ObjectStatus::default()
    };
    let accepted = match obs.outcome.rejected.get(obs.key) {
        Some(r) => condition(
            obs,
            condition_type::ACCEPTED,
            Some(false),
            r.reason,
            r.message.clone(),
        ),
        None => condition(
            obs,
            condition_type::ACCEPTED,
            Some(true),
            "Accepted",
            "in the provider catalogue".into(),
        ),
    };
    let usable =
        accepted.status != condition_status::FALSE || obs.outcome.catalogue_error.is_none();
    status.conditions.push(accepted);
    applied(obs, &mut status, usable);
    status
}

/// Status of a `RoutePolicy` or `Budget`: the shared fields and the policy's diagnostics.
pub fn policy(obs: &Observed<'_>) -> (ObjectStatus, Vec<PolicyDiagnostic>) {
    let mut status = ObjectStatus {
        observed_generation: Some(obs.generation),
        ..ObjectStatus::default()
    };
    let diagnostics = obs
        .outcome
        .diagnostics
        .get(obs.key)
        .cloned()
        .unwrap_or_default();
    status.conditions.push(condition(
        obs,
        condition_type::ACCEPTED,
        Some(true),
        "Accepted",
        "taken into the configuration".into(),
    ));
    let errors = obs.outcome.errors(obs.key);
    let warnings: Vec<&PolicyDiagnostic> =
        diagnostics.iter().filter(|d| !errors.contains(d)).collect();
    let compiled = if !errors.is_empty() {
        condition(
            obs,
            condition_type::COMPILED,
            Some(false),
            "CompileFailed",
            render(&errors),
        )
    } else if let Some(catalogue) = &obs.outcome.catalogue_error {
        condition(
            obs,
            condition_type::COMPILED,
            None,
            "ProvidersInvalid",
            format!("not compiled: the provider catalogue has errors: {catalogue}"),
        )
    } else if obs.outcome.snapshot.is_none() {
        condition(
            obs,
            condition_type::COMPILED,
            Some(true),
            "OtherObjectsFailed",
            "this policy compiled; other policies have errors, so the previous snapshot keeps serving"
                .into(),
        )
    } else if warnings.is_empty() {
        condition(
            obs,
            condition_type::COMPILED,
            Some(true),
            "Compiled",
            "compiled without diagnostics".into(),
        )
    } else {
        condition(
            obs,
            condition_type::COMPILED,
            Some(true),
            "CompiledWithWarnings",
            render(&warnings),
        )
    };
    let usable = compiled.status == condition_status::TRUE;
    status.conditions.push(compiled);
    applied(obs, &mut status, usable);
    (status, diagnostics)
}
