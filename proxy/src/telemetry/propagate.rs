//! W3C trace context: the client's `traceparent`/`tracestate` read, and the attempt's written
//! on the provider request, with the SDK's `TraceContextPropagator` (validation included).

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The client's trace context (an empty context when it sent none or an invalid one).
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// The `traceparent` and `tracestate` (when not empty) that make `span` the parent of
/// whatever the receiver records.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The headers that carry `span` to a provider.
pub fn inject(span: &SpanContext) -> Outgoing {
    let mut out = Outgoing::default();
    let cx = Context::new().with_remote_span_context(span.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_an_invalid_one_ignored() {
        let cx = extract(&headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let h = HeaderMap::from_iter([(
                http::header::HeaderName::from_static("traceparent"),
                http::HeaderValue::from_str(bad).expect("value"),
            )]);
            assert!(!extract(&h).span().span_context().is_valid(), "{bad}");
        }
        assert!(!extract(&HeaderMap::new()).span().span_context().is_valid());
    }

    #[test]
    fn the_outgoing_header_names_the_attempt_as_parent() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("b7ad6b7169203331").expect("hex"),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "x")]).expect("state"),
        );
        let out = inject(&sc);
        assert_eq!(
            out.traceparent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01")
        );
        assert_eq!(out.tracestate.as_deref(), Some("vendor=x"));
    }
}
