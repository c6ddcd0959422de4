//! `Budget` reconcile: `Compiled` with the line:column diagnostics, the rollout, and the live
//! counters (`state`, `budgets`) from the pods' usage reports (kept as they are while no pod
//! reports this object's budgets). A Warning Event marks each budget crossing into `warning`
//! or `exhausted`: status holds the previous state, so a crossing is reported once per window.

use kube::runtime::events::{Event, EventType};
use switchyard_crds::{Budget, BudgetState, BudgetStatus, ObjectStatus};

use crate::compile::Kind;
use crate::reconcile::Watched;
use crate::status::{self, Observed};

impl Watched for Budget {
    const KIND: Kind = Kind::Budget;
    type Status = BudgetStatus;

    fn current_status(&self) -> Option<&BudgetStatus> {
        self.status.as_ref()
    }

    fn desired_status(&self, obs: &Observed<'_>) -> BudgetStatus {
        let (object, diagnostics) = status::policy(obs);
        let current = self.status.clone().unwrap_or_default();
        let origin = format!("{}/{}", obs.key.namespace, obs.key.name);
        let budgets = obs
            .outcome
            .snapshot
            .as_ref()
            .map(|s| s.budgets.as_slice())
            .unwrap_or_default();
        let live = crate::usage::budget_status(obs.usage, &origin, |name| {
            budgets
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.warn_at_bp.clone())
        });
        let (state, usages) = match live {
            Some((state, usages)) => (Some(state), usages),
            None => (current.state, current.budgets),
        };
        BudgetStatus {
            object,
            diagnostics,
            state,
            budgets: usages,
        }
    }

    fn object_status(status: &BudgetStatus) -> &ObjectStatus {
        &status.object
    }

    fn status_events(&self, desired: &BudgetStatus) -> Vec<Event> {
        threshold_events(self.status.as_ref(), desired)
    }
}

/// A Warning for each budget whose state rose to `warning` or `exhausted`.
fn threshold_events(current: Option<&BudgetStatus>, desired: &BudgetStatus) -> Vec<Event> {
    desired
        .budgets
        .iter()
        .filter_map(|u| {
            let before = current
                .and_then(|c| c.budgets.iter().find(|p| p.name == u.name))
                .map_or(BudgetState::Ok, |p| p.state);
            if u.state <= before || u.state == BudgetState::Ok {
                return None;
            }
            let (reason, what) = match u.state {
                BudgetState::Exhausted => ("BudgetExhausted", "is exhausted"),
                _ => ("BudgetWarning", "passed a warning threshold"),
            };
            Some(Event {
                type_: EventType::Warning,
                reason: reason.into(),
                note: Some(format!(
                    "budget `{}` {what}: spent {}, remaining {}, resets at {}",
                    u.name,
                    u.spent,
                    u.remaining,
                    u.reset_at.as_deref().unwrap_or("?")
                )),
                action: "Budget".into(),
                secondary: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use switchyard_crds::BudgetUsage;

    use super::*;

    fn status(states: &[(&str, BudgetState)]) -> BudgetStatus {
        BudgetStatus {
            budgets: states
                .iter()
                .map(|(n, s)| BudgetUsage {
                    name: (*n).into(),
                    spent: "1 requests".into(),
                    remaining: "1 requests".into(),
                    reset_at: None,
                    state: *s,
                })
                .collect(),
            ..BudgetStatus::default()
        }
    }

    #[test]
    fn an_event_per_crossing_not_per_report() {
        use BudgetState::*;
        let ok = status(&[("a", Ok), ("b", Ok)]);
        let warn = status(&[("a", Warning), ("b", Ok)]);
        let events = threshold_events(Some(&ok), &warn);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "BudgetWarning");
        assert!(
            threshold_events(Some(&warn), &warn).is_empty(),
            "still warning"
        );
        let exhausted = status(&[("a", Exhausted), ("b", Exhausted)]);
        let reasons: Vec<_> = threshold_events(Some(&warn), &exhausted)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["BudgetExhausted", "BudgetExhausted"]);
        // A new window starts at ok; crossing again is reported again.
        assert!(threshold_events(Some(&exhausted), &ok).is_empty());
        assert_eq!(threshold_events(Some(&ok), &warn).len(), 1);
        assert_eq!(threshold_events(None, &warn).len(), 1);
    }
}
