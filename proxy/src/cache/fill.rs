//! Capturing a miss's answer for the cache while it goes to the client: the attempt code
//! calls [`tee`] on a stream once its first chunk is in (outside the budget meter, so it
//! sees what the client sees) and [`capture`] on a whole body; only the last attempt's bytes
//! are kept, and an answer larger than [`MAX_ENTRY_BYTES`] is dropped, not truncated.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::providers::{AttemptError, ResponseSource};

/// The largest answer the cache captures.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
struct Capture {
    buf: BytesMut,
    /// Why nothing is kept: `too_large` or `native` (a metric label).
    unusable: Option<&'static str>,
    /// Bumped by every reset: a tee of an earlier attempt (one still running beside a later
    /// one) stops writing, so two attempts' bytes never mix; at worst nothing is stored.
    generation: u64,
}

/// The capture buffer of one cache miss, carried beside the request's context.
#[derive(Debug, Clone, Default)]
pub struct Fill(Arc<Mutex<Capture>>);

impl Fill {
    fn with<T>(&self, f: impl FnOnce(&mut Capture) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts over (a new attempt); returns the new generation.
    fn reset(&self) -> u64 {
        self.with(|c| {
            let generation = c.generation + 1;
            *c = Capture {
                generation,
                ..Capture::default()
            };
            generation
        })
    }

    /// Starts over with nothing to keep (an answer that cannot be stored).
    fn discard(&self) {
        self.reset();
        self.with(|c| c.unusable = Some("native"));
    }

    /// Appends `chunk` when `generation` is still the current attempt's.
    fn push(&self, generation: u64, chunk: &[u8]) {
        self.with(|c| {
            if c.unusable.is_some() || c.generation != generation {
                return;
            }
            if c.buf.len() + chunk.len() > MAX_ENTRY_BYTES {
                c.unusable = Some("too_large");
                c.buf = BytesMut::new();
            } else {
                c.buf.extend_from_slice(chunk);
            }
        });
    }

    /// The captured bytes, or why there are none (`too_large`, `native`).
    pub fn take(&self) -> Result<Bytes, &'static str> {
        self.with(|c| match c.unusable {
            Some(why) => Err(why),
            None => Ok(std::mem::take(&mut c.buf).freeze()),
        })
    }
}

/// Attempt hook for a stream about to be relayed, its `first` chunk already read: the
/// source, copying `first` and every later chunk into the request's capture buffer when the
/// request is a cache miss. A stream `passthrough` in the client's own API (Anthropic to an
/// Anthropic client) is not OpenAI-shaped and is not kept.
pub fn tee(
    fill: Option<&Fill>,
    source: Box<dyn ResponseSource>,
    first: &Bytes,
    passthrough: bool,
) -> Box<dyn ResponseSource> {
    match fill {
        Some(fill) if passthrough => {
            fill.discard();
            source
        }
        Some(fill) => {
            let generation = fill.reset();
            fill.push(generation, first);
            Box::new(Tee {
                inner: source,
                generation,
                fill: fill.clone(),
            })
        }
        None => source,
    }
}

/// Attempt hook for a whole, checked 2xx body about to be sent; `passthrough` as for [`tee`].
pub fn capture(fill: Option<&Fill>, body: &Bytes, passthrough: bool) {
    match fill {
        Some(fill) if passthrough => fill.discard(),
        Some(fill) => {
            let generation = fill.reset();
            fill.push(generation, body);
        }
        None => {}
    }
}

/// A [`ResponseSource`] that copies what it yields into a [`Fill`].
struct Tee {
    inner: Box<dyn ResponseSource>,
    fill: Fill,
    generation: u64,
}

#[async_trait]
impl ResponseSource for Tee {
    fn status(&self) -> u16 {
        self.inner.status()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }

    fn passthrough(&self) -> bool {
        self.inner.passthrough()
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        let chunk = self.inner.next_chunk().await?;
        if let Some(c) = &chunk {
            self.fill.push(self.generation, c);
        }
        Ok(chunk)
    }

    async fn finish(self: Box<Self>) {
        self.inner.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_attempt_and_drops_oversized_answers() {
        let f = Fill::default();
        let first = f.reset();
        f.push(first, b"first attempt");
        let second = f.reset();
        f.push(second, b"data: x\n\n");
        // The earlier attempt, still running beside the later one, writes nothing more.
        f.push(first, b"data: late\n\n");
        assert_eq!(f.take().as_deref(), Ok(&b"data: x\n\n"[..]));
        let third = f.reset();
        f.push(third, &vec![b'a'; MAX_ENTRY_BYTES]);
        f.push(third, b"b");
        assert_eq!(f.take(), Err("too_large"));
        f.discard();
        assert_eq!(f.take(), Err("native"));
    }
}
