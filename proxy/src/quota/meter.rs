//! Metering a stream against its reservation: counts the output tokens of each relayed event
//! (about four characters of content per token), reserves more in steps of
//! [`TOP_UP_TOKENS`](super::TOP_UP_TOKENS) once the stream passes its reservation, and when
//! a budget with `on overrun cut` has nothing left, ends the stream with an
//! `insufficient_quota` error event instead of the next events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{Quota, Reservation, TOP_UP_TOKENS};
use crate::api::ApiError;
use crate::providers::{AttemptError, ResponseSource};

/// Estimated output tokens of one SSE `data:` payload.
pub fn event_tokens(data: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return 0;
    };
    let mut chars = 0usize;
    // A Responses API stream passed through from a target that speaks it.
    if let Some(kind) = v.get("type").and_then(|t| t.as_str())
        && matches!(
            kind,
            "response.output_text.delta" | "response.function_call_arguments.delta"
        )
        && let Some(d) = v.get("delta").and_then(|d| d.as_str())
    {
        chars += d.chars().count();
    }
    if let Some(choices) = v.get("choices").and_then(|c| c.as_array()) {
        for c in choices {
            let d = c.get("delta").or_else(|| c.get("message"));
            if let Some(s) = d.and_then(|d| d.get("content")).and_then(|s| s.as_str()) {
                chars += s.chars().count();
            }
            if let Some(calls) = d
                .and_then(|d| d.get("tool_calls"))
                .and_then(|t| t.as_array())
            {
                for call in calls {
                    if let Some(a) = call.pointer("/function/arguments").and_then(|a| a.as_str()) {
                        chars += a.chars().count();
                    }
                }
            }
        }
    }
    (chars as u64).div_ceil(4)
}

/// Length of the complete events at the start of `buf` and their estimated tokens.
pub fn complete_events(buf: &[u8]) -> (usize, u64) {
    let mut complete = 0;
    let mut tokens = 0;
    let mut event_start = 0;
    let mut line_start = 0;
    while let Some(off) = buf[line_start..].iter().position(|&b| b == b'\n') {
        let end = line_start + off;
        let line = buf[line_start..end]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[line_start..end]);
        if line.is_empty() {
            for l in buf[event_start..end].split(|&b| b == b'\n') {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                if let Some(d) = l.strip_prefix(b"data:") {
                    tokens += event_tokens(d.strip_prefix(b" ").unwrap_or(d));
                }
            }
            complete = end + 1;
            event_start = end + 1;
        }
        line_start = end + 1;
    }
    (complete, tokens)
}

/// The error event that ends a cut stream.
pub fn cut_event(budget: &str) -> Bytes {
    ApiError {
        status: 429,
        message: format!(
            "The response was cut off: budget `{budget}` ran out while it was streaming."
        ),
        kind: "insufficient_quota",
        code: Some("insufficient_quota"),
        retry_after: None,
    }
    .sse_event()
}

/// A [`ResponseSource`] that meters an SSE stream; see the module docs.
pub struct Metered {
    inner: Box<dyn ResponseSource>,
    quota: Arc<Quota>,
    reservation: Arc<Reservation>,
    pending: BytesMut,
    /// A budget without `cut` ran out: stop reserving, let the stream finish.
    finishing: bool,
    ended: bool,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

impl Metered {
    pub fn new(
        inner: Box<dyn ResponseSource>,
        quota: Arc<Quota>,
        reservation: Arc<Reservation>,
    ) -> Self {
        Self {
            inner,
            quota,
            reservation,
            pending: BytesMut::new(),
            finishing: false,
            ended: false,
        }
    }

    /// Reserves what the stream has used beyond its reservation; the name of the budget
    /// that cuts it, if one does.
    async fn keep_within(&mut self) -> Option<String> {
        let r = &self.reservation;
        while !self.finishing
            && r.output_seen.load(Ordering::Relaxed)
                > r.output_tokens + r.extra_tokens.load(Ordering::Relaxed)
        {
            match self.quota.top_up(r, TOP_UP_TOKENS).await {
                Ok(()) => {}
                Err((budget, true)) => return Some(budget),
                Err((_, false)) => self.finishing = true,
            }
        }
        None
    }
}

#[async_trait]
impl ResponseSource for Metered {
    fn status(&self) -> u16 {
        self.inner.status()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            let Some(chunk) = self.inner.next_chunk().await? else {
                self.ended = true;
                if self.pending.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.pending.split().freeze()));
            };
            self.pending.extend_from_slice(&chunk);
            let (n, tokens) = complete_events(&self.pending);
            if n == 0 {
                continue;
            }
            let out = self.pending.split_to(n).freeze();
            self.reservation
                .output_seen
                .fetch_add(tokens, Ordering::Relaxed);
            if let Some(budget) = self.keep_within().await {
                self.ended = true;
                return Ok(Some(cut_event(&budget)));
            }
            return Ok(Some(out));
        }
    }

    async fn finish(self: Box<Self>) {
        self.inner.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_counted() {
        let a = b"data: {\"choices\":[{\"delta\":{\"content\":\"hello world!\"}}]}\n\n";
        let b = b"data: {\"choices\":[{\"delta\":{\"content\":\"ab\"}}]}\r\n\r\ndata: {\"cho";
        let mut buf = a.to_vec();
        buf.extend_from_slice(b);
        let (n, t) = complete_events(&buf);
        assert_eq!(t, 3 + 1);
        assert_eq!(&buf[n..], b"data: {\"cho");
        assert_eq!(complete_events(b"data: [DONE]\n\n"), (14, 0));
        assert_eq!(complete_events(b"data: {\"x\""), (0, 0));
        let native = b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"12345678\"}\n\n";
        assert_eq!(complete_events(native).1, 2);
        let v: serde_json::Value =
            serde_json::from_slice(&cut_event("b")[6..]).expect("json event");
        assert_eq!(v["error"]["code"], "insufficient_quota");
    }
}
