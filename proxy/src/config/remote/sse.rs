//! A minimal `text/event-stream` decoder: enough of the SSE format for the control channel
//! (`event:` and `data:` fields, `:` comments, blank-line dispatch, `\n` or `\r\n` lines).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message` when the event named none.
    pub name: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Feeds bytes in, takes whole events out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

/// A stream whose pending line grows past this is broken (a snapshot of 10,000 routes is a few
/// megabytes).
const MAX_LINE: usize = 256 * 1024 * 1024;

impl Decoder {
    /// Adds `chunk` and returns the events it completed. Errors when a line grows without end.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, &'static str> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err("an event-stream line is too long");
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take();
            let name = self.name.take();
            return data.map(|data| Event {
                name: name.unwrap_or_else(|| "message".to_string()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_with_comments() {
        let mut d = Decoder::default();
        assert!(
            d.feed(b": ping\n\nevent: snap")
                .unwrap_or_default()
                .is_empty()
        );
        let got = d
            .feed(b"shot\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n")
            .expect("decodes");
        assert_eq!(
            got,
            vec![
                Event {
                    name: "snapshot".into(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    name: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
