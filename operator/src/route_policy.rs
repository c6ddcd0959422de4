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
        RoutePolicyStatus {
            object,
            diagnostics,
        }
    }

    fn object_status(status: &RoutePolicyStatus) -> &ObjectStatus {
        &status.object
    }
}
