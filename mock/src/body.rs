//! Response bodies: whole ones, and paced ones played step by step (waits, chunks, a cut)
//! so timing and body faults are plain data that unit tests can read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::config::Behaviour;
use crate::fault::Fault;
use crate::reply::SseEvent;

/// The error a body yields to make hyper drop the connection mid-body.
#[derive(Debug, thiserror::Error)]
#[error("response body cut by the mock (cut_stream fault)")]
pub struct BodyCut;

/// One step of a played body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait before the next step.
    Wait(Duration),
    /// Send these bytes as one chunk.
    Send(Bytes),
    /// Close the connection without finishing the body.
    Cut,
}

/// Marks a logged request as cancelled when dropped before [`Unfinished::done`]: held while
/// a request is answered, so a client that goes away mid-answer is seen.
#[derive(Debug)]
pub struct Unfinished {
    state: std::sync::Arc<crate::script::State>,
    seq: u64,
    done: bool,
}

impl Unfinished {
    pub fn new(state: std::sync::Arc<crate::script::State>, seq: u64) -> Self {
        Self {
            state,
            seq,
            done: false,
        }
    }

    /// The answer was delivered (or ended by the mock itself).
    pub fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done {
            self.state.mark_cancelled(self.seq);
        }
    }
}

/// A response body: whole, or fed by a task playing [`Step`]s.
#[derive(Debug)]
pub struct MockBody(Inner);

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Played {
        rx: mpsc::Receiver<Result<Bytes, BodyCut>>,
        /// A cut was received and one `Pending` returned, so hyper has flushed the chunks
        /// before it; the next poll yields the error.
        cutting: bool,
    },
}

impl MockBody {
    /// A whole body, sent with a `content-length`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        Self(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    /// A body that plays `steps` on a task of its own (sent chunked). The task stops when
    /// the client goes away, even in the middle of a wait; `unfinished` then records it.
    pub fn play(steps: Vec<Step>, unfinished: Option<Unfinished>) -> Self {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for step in steps {
                let sent = match step {
                    Step::Wait(d) => tokio::select! {
                        () = pause(d) => Ok(()),
                        () = tx.closed() => Err(()),
                    },
                    Step::Send(bytes) => tx.send(Ok(bytes)).await.map_err(drop),
                    Step::Cut => tx.send(Err(BodyCut)).await.map_err(drop),
                };
                if sent.is_err() {
                    return;
                }
            }
            if let Some(u) = unfinished {
                u.done();
            }
        });
        Self(Inner::Played { rx, cutting: false })
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        match &mut self.0 {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Played { cutting: true, .. } => Poll::Ready(Some(Err(BodyCut))),
            Inner::Played { rx, cutting } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Err(BodyCut))) => {
                    // hyper flushes what it has buffered when the body is pending; without
                    // this the chunks sent just before the cut could die in its buffer.
                    *cutting = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                other => other.map(|item| item.map(|r| r.map(Frame::data))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.0, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Played { .. } => SizeHint::default(),
        }
    }
}

/// Time between tokens after the first; zero when unpaced.
pub fn token_gap(behaviour: &Behaviour) -> Duration {
    let tps = behaviour.tokens_per_second;
    if tps > 0.0 && tps.is_finite() {
        Duration::from_secs_f64(1.0 / tps)
    } else {
        Duration::ZERO
    }
}

/// The fault's extra time to first token.
fn slow_ttft(fault: &Fault) -> Duration {
    match fault {
        Fault::SlowTtft { ms } => Duration::from_millis(*ms),
        _ => Duration::ZERO,
    }
}

/// How long a whole (non-streamed) answer waits before its headers: latency, time to
/// first token, and the pace of its `tokens`.
pub fn whole_delay(behaviour: &Behaviour, fault: &Fault, tokens: u32) -> Duration {
    Duration::from_millis(behaviour.latency_ms + behaviour.ttft_ms)
        + slow_ttft(fault)
        + token_gap(behaviour) * tokens.saturating_sub(1)
}

/// The steps of an SSE stream (sent after `latency_ms` and the headers): time to first
/// token before the first event, the token pace between token events, and the fault's
/// malformed event or cut placed after `after_chunks` events.
pub fn stream_steps(
    events: &[SseEvent],
    behaviour: &Behaviour,
    fault: &Fault,
    malformed: &SseEvent,
) -> Vec<Step> {
    let gap = token_gap(behaviour);
    let (cut_at, malformed_at) = match fault {
        Fault::CutStream { after_chunks } => (Some(*after_chunks as usize), None),
        Fault::MalformedChunk { after_chunks } => (None, Some(*after_chunks as usize)),
        _ => (None, None),
    };
    let mut steps = Vec::with_capacity(events.len() * 2 + 2);
    let mut seen_token = false;
    for (i, event) in events.iter().enumerate() {
        if cut_at == Some(i) {
            steps.push(Step::Cut);
            return steps;
        }
        let wait = if i == 0 {
            Duration::from_millis(behaviour.ttft_ms) + slow_ttft(fault)
        } else if event.token && seen_token {
            gap
        } else {
            Duration::ZERO
        };
        seen_token |= event.token;
        if !wait.is_zero() {
            steps.push(Step::Wait(wait));
        }
        if malformed_at == Some(i) {
            steps.push(Step::Send(malformed.encode()));
        }
        steps.push(Step::Send(event.encode()));
    }
    if malformed_at.is_some_and(|i| i >= events.len()) {
        steps.push(Step::Send(malformed.encode()));
    }
    if cut_at.is_some() {
        steps.push(Step::Cut);
    }
    steps
}

/// The body of a whole answer under a body fault: `cut_stream` sends the first half and
/// closes the connection; `malformed_chunk` sends only the first half (invalid JSON) and
/// ends cleanly. `None` when the fault leaves the body alone.
pub fn whole_body_fault(bytes: &Bytes, fault: &Fault) -> Option<MockBody> {
    let half = bytes.slice(..bytes.len() / 2);
    match fault {
        Fault::CutStream { .. } => Some(MockBody::play(vec![Step::Send(half), Step::Cut], None)),
        Fault::MalformedChunk { .. } => Some(MockBody::full(half)),
        _ => None,
    }
}

/// Sleeps for `d`, but not at all for zero: tokio's timer ticks in whole milliseconds, so even
/// a zero sleep would add up to a millisecond to every answer and skew latency baselines.
pub(crate) async fn pause(d: std::time::Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<SseEvent> {
        vec![
            SseEvent::data("role", false),
            SseEvent::data("a", true),
            SseEvent::data("b", true),
            SseEvent::data("[DONE]", false),
        ]
    }

    fn sends(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Wait(d) => format!("wait {}", d.as_millis()),
                Step::Send(b) => String::from_utf8_lossy(b)
                    .trim()
                    .trim_start_matches("data: ")
                    .to_owned(),
                Step::Cut => "cut".to_owned(),
            })
            .collect()
    }

    #[test]
    fn paces_first_chunk_and_tokens() {
        let behaviour = Behaviour {
            ttft_ms: 100,
            tokens_per_second: 10.0,
            ..Behaviour::default()
        };
        let steps = stream_steps(
            &events(),
            &behaviour,
            &Fault::SlowTtft { ms: 50 },
            &SseEvent::data("x", false),
        );
        assert_eq!(
            sends(&steps),
            ["wait 150", "role", "a", "wait 100", "b", "[DONE]"]
        );
    }

    #[test]
    fn cuts_and_malforms_after_n_chunks() {
        let bad = SseEvent::data("{bad", false);
        let b = Behaviour::default();
        let cut = stream_steps(&events(), &b, &Fault::CutStream { after_chunks: 2 }, &bad);
        assert_eq!(sends(&cut), ["role", "a", "cut"]);
        let cut_late = stream_steps(&events(), &b, &Fault::CutStream { after_chunks: 9 }, &bad);
        assert_eq!(sends(&cut_late), ["role", "a", "b", "[DONE]", "cut"]);
        let bad_steps = stream_steps(
            &events(),
            &b,
            &Fault::MalformedChunk { after_chunks: 1 },
            &bad,
        );
        assert_eq!(sends(&bad_steps), ["role", "{bad", "a", "b", "[DONE]"]);
    }

    #[test]
    fn whole_delay_adds_latency_ttft_and_pace() {
        let behaviour = Behaviour {
            latency_ms: 10,
            ttft_ms: 20,
            tokens_per_second: 100.0,
            ..Behaviour::default()
        };
        assert_eq!(
            whole_delay(&behaviour, &Fault::None, 3),
            Duration::from_millis(50)
        );
        assert_eq!(
            whole_delay(&Behaviour::default(), &Fault::None, 3),
            Duration::ZERO
        );
    }
}
