//! `RoutePolicy` reconcile: `Compiled` with the line:column diagnostics, and the rollout.

use switchyard_crds::{ObjectStatus, RoutePolicy, RoutePolicyStatus};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for RoutePolicy {
    const KIND: Kind = Kind::RoutePolicy;
    type Status = RoutePolicyStatus;

    fn current_status(&self) -> Option<&RoutePolicyStatus> {
        self.status.as_ref()
    }

    fn desired_status(&self, obs: &Observed<'_>) -> RoutePolicyStatus {
        let (object, diagnostics) = status::policy(obs);
        // Kept as it is while no pod reports on the current shadow snapshot.
        let shadow = self.spec.is_shadow().then(|| {
            obs.shadow
                .cloned()
                .or_else(|| self.status.as_ref().and_then(|s| s.shadow.clone()))
        });
        RoutePolicyStatus {
            object,
            diagnostics,
            shadow: shadow.flatten(),
        }
    }

    fn object_status(status: &RoutePolicyStatus) -> &ObjectStatus {
        &status.object
    }
}
