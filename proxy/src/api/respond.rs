//! Writing responses to the client: JSON bodies, OpenAI-shaped errors, SSE headers, and the
//! `x-switchyard-*` headers that say what happened.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::ApiError;
use crate::ctx::RequestCtx;

/// Builds a response header with the `x-switchyard-*` headers from `ctx`.
pub fn header(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    ctx: &RequestCtx,
) -> Box<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(8))
        .or_else(|_| ResponseHeader::build(502, Some(8)))
        .expect("502 is a valid status");
    let _ = h.insert_header("content-type", content_type);
    match content_length {
        Some(n) => {
            let _ = h.insert_header("content-length", n.to_string());
        }
        None => {
            let _ = h.insert_header("transfer-encoding", "chunked");
            let _ = h.insert_header("cache-control", "no-cache");
        }
    }
    if let Some(r) = &ctx.route {
        let _ = h.insert_header("x-switchyard-route", r.as_str());
    }
    if let Some(p) = &ctx.provider {
        let _ = h.insert_header("x-switchyard-provider", p.as_str());
    }
    if let Some(m) = &ctx.model {
        let _ = h.insert_header("x-switchyard-model", m.as_str());
    }
    if let Some(d) = &ctx.downgraded {
        let _ = h.insert_header("x-switchyard-downgraded", d.as_str());
    }
    if let Some(c) = ctx.cache {
        let _ = h.insert_header("x-switchyard-cache", c);
    }
    if ctx.attempts > 0 {
        let _ = h.insert_header("x-switchyard-attempts", ctx.attempts.to_string());
    }
    if !ctx.rerouted.is_empty() {
        let _ = h.insert_header(
            "x-switchyard-failover",
            header_text(&ctx.rerouted.join("; ")),
        );
    }
    if let Some(why) = &ctx.hedged {
        let _ = h.insert_header("x-switchyard-hedged", header_text(why));
    }
    Box::new(h)
}

/// `text` made safe for a header value: visible ASCII and spaces, at most 1 KiB.
fn header_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.len() > 1024 {
        out.truncate(1021);
        out.push_str("...");
    }
    out
}

/// Sends a whole response; `false` when the client went away.
pub async fn send(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut h: Box<ResponseHeader>,
    body: Bytes,
    retry_after: Option<&str>,
) -> bool {
    if let Some(ra) = retry_after {
        let _ = h.insert_header("retry-after", ra);
    }
    ctx.status = h.status.as_u16();
    if session
        .write_response_header(h, body.is_empty())
        .await
        .is_err()
    {
        return false;
    }
    if body.is_empty() {
        return true;
    }
    session.write_response_body(Some(body), true).await.is_ok()
}

/// Sends a JSON document with status 200.
pub async fn send_json(session: &mut Session, ctx: &mut RequestCtx, body: Bytes) -> bool {
    let h = header(200, "application/json", Some(body.len()), ctx);
    send(session, ctx, h, body, None).await
}

/// Sends an OpenAI-shaped error.
pub async fn send_error(session: &mut Session, ctx: &mut RequestCtx, e: &ApiError) -> bool {
    ctx.error.get_or_insert_with(|| e.message.clone());
    let body = ctx.client.error_body(e);
    let h = header(e.status, "application/json", Some(body.len()), ctx);
    let ra = e.retry_after.map(|s| s.to_string());
    send(session, ctx, h, body, ra.as_deref()).await
}
