//! Published snapshot versions and the proxy pods that run them.
//!
//! [`Publisher`] holds the live version (a `watch` channel the control channel streams from);
//! [`Pods`] tracks which pods are connected and which version each acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use switchyard_dsl::channel::{Ack, SnapshotEnvelope};
use tokio::sync::watch;

use crate::compile::{ObjectKey, Outcome};

/// One published version, with its SSE `data:` line ready to send.
#[derive(Debug)]
pub struct Publication {
    pub version: u64,
    pub hash: String,
    /// Content hash of the shadow snapshot, when the version carries one.
    pub shadow_hash: Option<String>,
    pub credentials_digest: String,
    /// The generation of every object this version was compiled from (or, after an edit that
    /// left the content hash unchanged, the generation it equally represents).
    pub generations: BTreeMap<ObjectKey, i64>,
    /// The [`SnapshotEnvelope`] as one line of JSON.
    pub data: Arc<str>,
    /// The envelope itself, to re-issue the same content under a higher version.
    envelope: Arc<SnapshotEnvelope>,
}

/// The live snapshot version. Versions are monotonic: the first one is above every version
/// recorded in the objects' status and every version a pod reported holding.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<Option<Arc<Publication>>>,
    floor: Mutex<u64>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            tx: watch::channel(None).0,
            floor: Mutex::new(0),
        }
    }
}

impl Publisher {
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Publication>>> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Option<Arc<Publication>> {
        self.tx.borrow().clone()
    }

    /// Makes the next version at least `version + 1` (a version seen in status or from a pod).
    pub fn raise_floor(&self, version: u64) {
        let mut floor = self.floor.lock().unwrap_or_else(|e| e.into_inner());
        *floor = (*floor).max(version);
    }

    /// Publishes the outcome's snapshot when its content hash or credentials differ from the
    /// live version; returns the new version. A failed compile publishes nothing.
    pub fn publish(&self, outcome: &Outcome) -> Result<Option<u64>, serde_json::Error> {
        self.publish_traced(outcome, None)
    }

    /// [`Publisher::publish`], the envelope naming `traceparent` (the publish span) so that
    /// the proxies' apply spans join the trace.
    pub fn publish_traced(
        &self,
        outcome: &Outcome,
        traceparent: Option<String>,
    ) -> Result<Option<u64>, serde_json::Error> {
        let Some(snapshot) = &outcome.snapshot else {
            return Ok(None);
        };
        let credentials_digest = outcome.credentials_digest();
        let shadow_hash = outcome.shadow.as_ref().map(|s| s.hash.clone());
        let current = self.current();
        if let Some(live) = &current
            && live.hash == snapshot.hash
            && live.shadow_hash == shadow_hash
            && live.credentials_digest == credentials_digest
        {
            if live.generations != outcome.generations {
                // Same content: the live version stands for the new generations too.
                let updated = Publication {
                    version: live.version,
                    hash: live.hash.clone(),
                    shadow_hash: live.shadow_hash.clone(),
                    credentials_digest,
                    generations: outcome.generations.clone(),
                    data: live.data.clone(),
                    envelope: live.envelope.clone(),
                };
                self.tx.send_replace(Some(Arc::new(updated)));
            }
            return Ok(None);
        }
        let version = {
            let mut floor = self.floor.lock().unwrap_or_else(|e| e.into_inner());
            let live = current.as_ref().map_or(0, |p| p.version);
            let version = (*floor).max(live) + 1;
            *floor = version;
            version
        };
        let envelope = SnapshotEnvelope {
            version,
            snapshot: snapshot.clone(),
            credentials: outcome.credentials.clone(),
            client_keys: outcome.client_keys.clone(),
            traceparent,
            shadow: outcome.shadow.clone(),
        };
        let data: Arc<str> = serde_json::to_string(&envelope)?.into();
        self.tx.send_replace(Some(Arc::new(Publication {
            version,
            hash: snapshot.hash.clone(),
            shadow_hash,
            credentials_digest,
            generations: outcome.generations.clone(),
            data,
            envelope: Arc::new(envelope),
        })));
        Ok(Some(version))
    }

    /// A pod holds `have`, above the live version (e.g. from an earlier installation whose
    /// status is gone): re-issue the live content above it, or the pod would ignore every
    /// version until one passes `have`. Returns the new version.
    pub fn reissue_above(&self, have: u64) -> Result<Option<u64>, serde_json::Error> {
        self.raise_floor(have);
        let Some(live) = self.current() else {
            return Ok(None);
        };
        if live.version >= have {
            return Ok(None);
        }
        let version = {
            let mut floor = self.floor.lock().unwrap_or_else(|e| e.into_inner());
            let version = (*floor).max(live.version) + 1;
            *floor = version;
            version
        };
        let envelope = SnapshotEnvelope {
            version,
            ..(*live.envelope).clone()
        };
        let data: Arc<str> = serde_json::to_string(&envelope)?.into();
        self.tx.send_replace(Some(Arc::new(Publication {
            version,
            hash: live.hash.clone(),
            shadow_hash: live.shadow_hash.clone(),
            credentials_digest: live.credentials_digest.clone(),
            generations: live.generations.clone(),
            data,
            envelope: Arc::new(envelope),
        })));
        Ok(Some(version))
    }
}

#[derive(Debug, Default, Clone)]
struct PodState {
    streams: usize,
    version: Option<u64>,
    applied: bool,
    error: Option<String>,
}

/// Proxy pods seen on the control channel.
#[derive(Debug)]
pub struct Pods {
    inner: Mutex<HashMap<String, PodState>>,
    changed: watch::Sender<u64>,
}

impl Default for Pods {
    fn default() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

/// Rollout of one version over the connected pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub applied: usize,
    pub connected: usize,
    /// `pod: error` of pods that refused the version.
    pub refused: Vec<String>,
}

impl Rollout {
    /// `applied/connected`, e.g. `2/2`.
    pub fn ratio(&self) -> String {
        format!("{}/{}", self.applied, self.connected)
    }
}

impl Pods {
    /// Bumped whenever a connection or an ack changes the counts.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<String, PodState>)) {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut inner);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// A pod opened a stream holding `have` (a pod that holds a version runs it).
    pub fn connected(&self, pod: &str, have: u64) {
        self.update(|pods| {
            let state = pods.entry(pod.to_string()).or_default();
            state.streams += 1;
            if have > 0 && state.version.is_none_or(|v| v < have) {
                state.version = Some(have);
                state.applied = true;
                state.error = None;
            }
        });
    }

    pub fn disconnected(&self, pod: &str) {
        self.update(|pods| {
            // A pod that comes back reports its version in `have`, so forget it entirely.
            if let Some(state) = pods.get_mut(pod) {
                state.streams = state.streams.saturating_sub(1);
                if state.streams == 0 {
                    pods.remove(pod);
                }
            }
        });
    }

    /// Records an ack of a connected pod (acks of pods without a stream are dropped: a pod
    /// reports its version again in `have` when it reconnects).
    pub fn ack(&self, ack: &Ack) {
        self.update(|pods| {
            if let Some(state) = pods.get_mut(&ack.pod) {
                state.version = Some(ack.version);
                state.applied = ack.applied;
                state.error = ack.error.clone();
            }
        });
    }

    pub fn connected_count(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.values().filter(|p| p.streams > 0).count()
    }

    /// How many connected pods run `version`.
    pub fn rollout(&self, version: u64) -> Rollout {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rollout = Rollout {
            applied: 0,
            connected: 0,
            refused: Vec::new(),
        };
        let mut names: Vec<&String> = inner.keys().collect();
        names.sort();
        for name in names {
            let state = &inner[name];
            if state.streams == 0 {
                continue;
            }
            rollout.connected += 1;
            if state.version == Some(version) {
                if state.applied {
                    rollout.applied += 1;
                } else {
                    rollout.refused.push(format!(
                        "{name}: {}",
                        state.error.as_deref().unwrap_or("refused")
                    ));
                }
            }
        }
        rollout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(hash: &str, generation: i64) -> Outcome {
        let snapshot: switchyard_dsl::Snapshot = serde_json::from_value(serde_json::json!({
            "ir_version": 1, "hash": hash, "providers": [], "targets": [], "routes": [], "budgets": []
        }))
        .expect("snapshot");
        let key = ObjectKey {
            kind: crate::compile::Kind::RoutePolicy,
            namespace: "ns".into(),
            name: "a".into(),
        };
        Outcome {
            snapshot: Some(snapshot),
            generations: [(key, generation)].into(),
            ..Outcome::default()
        }
    }

    #[test]
    fn the_envelope_names_the_publish_span_when_traced() {
        let p = Publisher::default();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string();
        let envelope = |p: &Publisher| -> SnapshotEnvelope {
            serde_json::from_str(&p.current().expect("live").data).expect("envelope")
        };
        assert_eq!(
            p.publish_traced(&outcome("h1", 1), Some(tp.clone()))
                .expect("json"),
            Some(1)
        );
        assert_eq!(envelope(&p).traceparent, Some(tp));
        assert_eq!(p.publish(&outcome("h2", 2)).expect("json"), Some(2));
        assert_eq!(envelope(&p).traceparent, None);
        assert!(!p.current().expect("live").data.contains("traceparent"));
    }

    #[test]
    fn publishes_only_when_content_changes_and_versions_stay_monotonic() {
        let p = Publisher::default();
        p.raise_floor(7);
        assert_eq!(p.publish(&outcome("h1", 1)).expect("json"), Some(8));
        assert_eq!(
            p.publish(&outcome("h1", 2)).expect("json"),
            None,
            "same content"
        );
        assert_eq!(
            p.current()
                .map(|c| c.generations.values().copied().collect::<Vec<_>>()),
            Some(vec![2])
        );
        let mut failed = outcome("h2", 3);
        failed.snapshot = None;
        assert_eq!(p.publish(&failed).expect("json"), None, "failed compile");
        assert_eq!(p.current().map(|c| c.version), Some(8));
        assert_eq!(p.publish(&outcome("h2", 4)).expect("json"), Some(9));
        // A pod from an earlier installation holds 20: the live content is re-issued above it.
        assert_eq!(p.reissue_above(20).expect("json"), Some(21));
        let live = p.current().expect("live");
        assert_eq!((live.version, live.hash.as_str()), (21, "h2"));
        assert!(live.data.contains("\"version\":21"));
        assert_eq!(p.reissue_above(5).expect("json"), None);
    }

    #[test]
    fn counts_connected_pods_that_acked_the_version() {
        let pods = Pods::default();
        pods.connected("a", 0);
        pods.connected("b", 3);
        pods.ack(&Ack {
            pod: "a".into(),
            version: 3,
            hash: "h".into(),
            applied: true,
            error: None,
        });
        assert_eq!(pods.rollout(3).ratio(), "2/2");
        pods.disconnected("b");
        assert_eq!(pods.rollout(3).ratio(), "1/1");
        assert_eq!(pods.rollout(4).ratio(), "0/1");
    }
}
