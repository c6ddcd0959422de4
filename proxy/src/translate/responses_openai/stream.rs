//! OpenAI chat chunks → Responses events, as they arrive.

use serde_json::{Value, json};

use super::{Echo, message_item, reasoning_item, reasoning_text, status_of, usage};
use crate::translate::sse::Parser;

/// An item being streamed.
#[derive(Debug)]
struct Open {
    output_index: usize,
    id: String,
    kind: OpenKind,
    text: String,
}

#[derive(Debug)]
enum OpenKind {
    Text,
    Reasoning,
    /// A function call; `index` is the chat tool call's.
    Call {
        index: u64,
        call_id: Value,
        name: Value,
    },
}

/// OpenAI chat chunks → Responses events, as they arrive. Every event carries a
/// `sequence_number`; the stream ends with `response.completed` (or `.incomplete`) once the
/// chat stream's `[DONE]` arrives, or `response.failed` for an error.
#[derive(Debug)]
pub struct Stream {
    echo: Echo,
    model: String,
    parser: Parser,
    seq: u64,
    started: bool,
    open: Vec<Open>,
    /// Finished output items, in order.
    output: Vec<Value>,
    next_index: usize,
    finish: Option<String>,
    usage: Value,
    /// The final response object once the stream completed (for the gateway's store).
    pub completed: Option<Value>,
    pub ended: bool,
}

impl Stream {
    pub fn new(echo: Echo, model: &str) -> Self {
        Self {
            echo,
            model: model.to_owned(),
            parser: Parser::default(),
            seq: 0,
            started: false,
            open: Vec::new(),
            output: Vec::new(),
            next_index: 0,
            finish: None,
            usage: Value::Null,
            completed: None,
            ended: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, name: &str, mut v: Value) {
        v["type"] = json!(name);
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        push_event(out, name, &v);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.echo.response(&self.model, "in_progress");
        self.emit(out, "response.created", json!({"response": r}));
        let r = self.echo.response(&self.model, "in_progress");
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn open_item(&mut self, out: &mut Vec<u8>, kind: OpenKind) -> usize {
        let output_index = self.next_index;
        self.next_index += 1;
        let (prefix, item) = match &kind {
            OpenKind::Text => ("msg", None),
            OpenKind::Reasoning => ("rs", None),
            OpenKind::Call { call_id, name, .. } => ("fc", Some((call_id.clone(), name.clone()))),
        };
        let id = self.echo.item_id(prefix, output_index);
        let item = match (&kind, item) {
            (OpenKind::Text, _) => json!({
                "type": "message", "id": id, "status": "in_progress", "role": "assistant",
                "content": [],
            }),
            (OpenKind::Reasoning, _) => json!({"type": "reasoning", "id": id, "summary": []}),
            (_, Some((call_id, name))) => {
                self.echo
                    .call_item(id.clone(), &call_id, &name, "", "in_progress")
            }
            (_, None) => Value::Null,
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        match kind {
            OpenKind::Text => self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": []}}),
            ),
            OpenKind::Reasoning => self.emit(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            ),
            OpenKind::Call { .. } => {}
        }
        self.open.push(Open {
            output_index,
            id,
            kind,
            text: String::new(),
        });
        self.open.len() - 1
    }

    fn close(&mut self, out: &mut Vec<u8>, status: &str) {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|o| o.output_index);
        for o in open {
            let (oi, id) = (o.output_index, o.id.clone());
            let item = match &o.kind {
                OpenKind::Text => {
                    self.emit(
                        out,
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": oi, "content_index": 0,
                               "text": o.text, "logprobs": []}),
                    );
                    self.emit(
                        out,
                        "response.content_part.done",
                        json!({"item_id": id, "output_index": oi, "content_index": 0,
                               "part": {"type": "output_text", "text": o.text, "annotations": []}}),
                    );
                    message_item(id, &o.text, status)
                }
                OpenKind::Reasoning => {
                    self.emit(
                        out,
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": oi, "summary_index": 0,
                               "text": o.text}),
                    );
                    self.emit(
                        out,
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": oi, "summary_index": 0,
                               "part": {"type": "summary_text", "text": o.text}}),
                    );
                    reasoning_item(id, &o.text)
                }
                OpenKind::Call { call_id, name, .. } => {
                    self.emit(
                        out,
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": oi, "name": name,
                               "arguments": o.text}),
                    );
                    self.echo.call_item(id, call_id, name, &o.text, status)
                }
            };
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": oi, "item": item}),
            );
            self.output.push(item);
        }
    }

    /// The open item of `kind`'s sort, opening it (and closing others) as needed.
    fn item(&mut self, out: &mut Vec<u8>, kind: OpenKind) -> usize {
        let found = self.open.iter().position(|o| match (&o.kind, &kind) {
            (OpenKind::Text, OpenKind::Text) | (OpenKind::Reasoning, OpenKind::Reasoning) => true,
            (OpenKind::Call { index: a, .. }, OpenKind::Call { index: b, .. }) => a == b,
            _ => false,
        });
        if let Some(i) = found {
            return i;
        }
        // Text after reasoning, or a call after text: what came before is finished.
        let switching = self.open.iter().any(|o| {
            matches!(
                (&o.kind, &kind),
                (OpenKind::Reasoning, _) | (OpenKind::Text, OpenKind::Call { .. })
            )
        });
        if switching {
            self.close(out, "completed");
        }
        self.open_item(out, kind)
    }

    fn delta(&mut self, out: &mut Vec<u8>, i: usize, delta: &str) {
        let (oi, id) = (self.open[i].output_index, self.open[i].id.clone());
        self.open[i].text.push_str(delta);
        let (name, v) = match self.open[i].kind {
            OpenKind::Text => (
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": delta,
                       "logprobs": []}),
            ),
            OpenKind::Reasoning => (
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": delta}),
            ),
            OpenKind::Call { .. } => (
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": oi, "delta": delta}),
            ),
        };
        self.emit(out, name, v);
    }

    fn chunk(&mut self, out: &mut Vec<u8>, v: &Value) {
        if v["usage"].is_object() {
            self.usage = usage(&v["usage"]);
        }
        let choice = &v["choices"][0];
        let d = &choice["delta"];
        if let Some(r) = reasoning_text(d) {
            let i = self.item(out, OpenKind::Reasoning);
            self.delta(out, i, r);
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            let i = self.item(out, OpenKind::Text);
            self.delta(out, i, t);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            let i = self.item(
                out,
                OpenKind::Call {
                    index,
                    call_id: call["id"].clone(),
                    name: call["function"]["name"].clone(),
                },
            );
            if let Some(a) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                self.delta(out, i, a);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        let (status, incomplete) = status_of(self.finish.as_deref());
        self.close(
            out,
            if status == "completed" {
                status
            } else {
                "incomplete"
            },
        );
        let mut r = self.echo.response(&self.model, status);
        r["incomplete_details"] = incomplete;
        r["output"] = Value::Array(std::mem::take(&mut self.output));
        r["usage"] = std::mem::take(&mut self.usage);
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, name, json!({"response": r.clone()}));
        self.completed = Some(r);
        self.ended = true;
    }

    /// Adds chat chunk bytes; returns the Responses events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.push(bytes) {
            if self.ended {
                break;
            }
            if ev.data == "[DONE]" {
                self.end(&mut out);
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if v["error"].is_object() {
                let msg = crate::translate::error_message(&v)
                    .unwrap_or("upstream error")
                    .to_owned();
                out.extend(self.failed(&msg));
                continue;
            }
            self.start(&mut out);
            self.chunk(&mut out, &v);
        }
        out
    }

    /// The `response.failed` event that ends a stream broken off after it started.
    pub fn failed(&mut self, message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&mut out);
        let mut r = self.echo.response(&self.model, "failed");
        r["error"] = json!({"code": "server_error", "message": message});
        r["output"] = Value::Array(std::mem::take(&mut self.output));
        self.emit(&mut out, "response.failed", json!({"response": r}));
        self.ended = true;
        out
    }
}

fn push_event(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}
