//! `Budget` reconcile: `Compiled` with the line:column diagnostics, and the rollout. The live
//! counters (`state`, `budgets`) come from the proxies and are left as they are.

use switchyard_crds::{Budget, BudgetStatus, Condition};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for Budget {
    const KIND: Kind = Kind::Budget;
    type Status = BudgetStatus;

    fn current_status(&self) -> Option<&BudgetStatus> {
        self.status.as_ref()
    }

    fn current_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn desired_status(&self, obs: &Observed<'_>) -> BudgetStatus {
        let c = status::policy(obs);
        let current = self.status.clone().unwrap_or_default();
        BudgetStatus {
            conditions: c.conditions,
            observed_generation: c.observed_generation,
            snapshot_version: c.snapshot_version,
            snapshot_hash: c.snapshot_hash,
            applied_pods: c.applied_pods,
            diagnostics: c.diagnostics,
            state: current.state,
            budgets: current.budgets,
        }
    }

    fn conditions_of(status: &BudgetStatus) -> &[Condition] {
        &status.conditions
    }
}
