//! `LLMProvider` reconcile: `Accepted` (catalogue errors, Secret resolution) and the rollout.

use switchyard_crds::{Condition, LLMProvider, LLMProviderStatus};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for LLMProvider {
    const KIND: Kind = Kind::LLMProvider;
    type Status = LLMProviderStatus;

    fn current_status(&self) -> Option<&LLMProviderStatus> {
        self.status.as_ref()
    }

    fn current_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn desired_status(&self, obs: &Observed<'_>) -> LLMProviderStatus {
        let c = status::provider(obs);
        LLMProviderStatus {
            conditions: c.conditions,
            observed_generation: c.observed_generation,
            snapshot_version: c.snapshot_version,
            snapshot_hash: c.snapshot_hash,
            applied_pods: c.applied_pods,
        }
    }

    fn conditions_of(status: &LLMProviderStatus) -> &[Condition] {
        &status.conditions
    }
}
