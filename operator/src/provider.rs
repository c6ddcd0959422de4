//! `LLMProvider` reconcile: `Accepted` (catalogue errors, Secret resolution) and the rollout.

use switchyard_crds::{LLMProvider, LLMProviderStatus, ObjectStatus};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for LLMProvider {
    const KIND: Kind = Kind::LLMProvider;
    type Status = LLMProviderStatus;

    fn current_status(&self) -> Option<&LLMProviderStatus> {
        self.status.as_ref()
    }

    fn desired_status(&self, obs: &Observed<'_>) -> LLMProviderStatus {
        LLMProviderStatus {
            object: status::provider(obs),
        }
    }

    fn object_status(status: &LLMProviderStatus) -> &ObjectStatus {
        &status.object
    }
}
