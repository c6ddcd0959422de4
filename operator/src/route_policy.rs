//! `RoutePolicy` reconcile: `Compiled` with the line:column diagnostics, and the rollout.

use switchyard_crds::{Condition, RoutePolicy, RoutePolicyStatus};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for RoutePolicy {
    const KIND: Kind = Kind::RoutePolicy;
    type Status = RoutePolicyStatus;

    fn current_status(&self) -> Option<&RoutePolicyStatus> {
        self.status.as_ref()
    }

    fn current_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn desired_status(&self, obs: &Observed<'_>) -> RoutePolicyStatus {
        let c = status::policy(obs);
        RoutePolicyStatus {
            conditions: c.conditions,
            observed_generation: c.observed_generation,
            snapshot_version: c.snapshot_version,
            snapshot_hash: c.snapshot_hash,
            applied_pods: c.applied_pods,
            diagnostics: c.diagnostics,
        }
    }

    fn conditions_of(status: &RoutePolicyStatus) -> &[Condition] {
        &status.conditions
    }
}
