//! An incremental server-sent-events parser: bytes in, whole events out, however the bytes
//! were split. The translators, the response cache and the control channel all read their
//! event streams with it.

/// One event: its `event:` name (if any) and its joined `data:` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// A line left unfinished past this many bytes breaks the stream (a control-channel snapshot of
/// 10,000 routes is a few megabytes; model output arrives in small events).
pub const MAX_PENDING: usize = 256 * 1024 * 1024;

/// Splits a byte stream into events.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    current: Event,
    has_data: bool,
    /// Longest unfinished line kept ([`MAX_PENDING`] by default).
    limit: usize,
    /// A line grew past `limit`: the rest of the stream is ignored.
    overflowed: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_limit(MAX_PENDING)
    }
}

impl Parser {
    /// A parser that gives up on a line longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            current: Event::default(),
            has_data: false,
            limit,
            overflowed: false,
        }
    }

    /// Adds `chunk` and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        if self.overflowed {
            return Vec::new();
        }
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(off) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + off;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut out);
        }
        self.buf.drain(..start);
        if self.buf.len() > self.limit {
            self.overflowed = true;
            self.buf = Vec::new();
        }
        out
    }

    /// Whether a line grew past the limit (the stream is broken; nothing more is read).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    fn line(&mut self, line: &str, out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data || self.current.event.is_some() {
                out.push(std::mem::take(&mut self.current));
            }
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    /// Whether bytes or an unfinished event are left over.
    pub fn has_partial(&self) -> bool {
        !self.buf.iter().all(u8::is_ascii_whitespace) || self.has_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_end_breaks_the_stream() {
        let mut p = Parser::with_limit(16);
        assert_eq!(p.push(b"data: 1\n\n").len(), 1);
        assert!(p.push(b"data: 0123456789").is_empty());
        assert!(!p.overflowed());
        assert!(p.push(b"0123456789").is_empty());
        assert!(p.overflowed());
        assert!(
            p.push(b"\n\ndata: 2\n\n").is_empty(),
            "nothing is read after the overflow"
        );
    }

    #[test]
    fn named_events_and_comments_as_the_control_channel_sends_them() {
        let mut p = Parser::default();
        assert!(p.push(b": ping\n\nevent: snap").is_empty());
        let got = p.push(b"shot\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event.as_deref(), Some("snapshot"));
        assert_eq!(got[0].data, "{\"a\":1}");
        assert_eq!(
            (got[1].event.as_deref(), got[1].data.as_str()),
            (None, "x\ny")
        );
    }

    #[test]
    fn split_anywhere() {
        let text = b"event: a\ndata: {\"x\":1}\n\n: ping\n\ndata: 2\r\ndata: 3\r\n\r\n";
        for cut in 0..text.len() {
            let mut p = Parser::default();
            let mut evs = p.push(&text[..cut]);
            evs.extend(p.push(&text[cut..]));
            assert_eq!(evs.len(), 2, "cut at {cut}");
            assert_eq!(evs[0].event.as_deref(), Some("a"));
            assert_eq!(evs[0].data, "{\"x\":1}");
            assert_eq!(evs[1].data, "2\n3");
            assert!(!p.has_partial());
        }
    }
}
