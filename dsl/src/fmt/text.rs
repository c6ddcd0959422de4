//! One-line text of the tree's leaves and conditions: quantities exactly as written, strings
//! re-escaped, conditions with the parentheses precedence needs plus those that help a reader.

use std::fmt::Write as _;

use crate::ast::*;

/// Binding strength: `or` < `and` < `not` < everything else.
fn precedence(e: &Expr) -> u8 {
    match e.kind {
        ExprKind::Or(_) => 1,
        ExprKind::And(_) => 2,
        ExprKind::Not(_) => 3,
        _ => 4,
    }
}

/// A condition on one line, with parentheses where precedence needs them, around an `and`
/// inside an `or` (`a or (b and c)`: correct without them, but nobody should have to remember
/// that), and around an `or` directly inside an `or`, or an `and` inside an `and`, so the tree
/// reads back the same.
pub(super) fn expr(e: &Expr) -> String {
    let operand = |inner: &Expr, min: u8| {
        let text = expr(inner);
        if precedence(inner) < min {
            format!("({text})")
        } else {
            text
        }
    };
    match &e.kind {
        ExprKind::Or(ops) => ops
            .iter()
            .map(|o| operand(o, 3))
            .collect::<Vec<_>>()
            .join(" or "),
        ExprKind::And(ops) => ops
            .iter()
            .map(|o| operand(o, 3))
            .collect::<Vec<_>>()
            .join(" and "),
        ExprKind::Not(inner) => format!("not {}", operand(inner, 3)),
        ExprKind::Compare {
            subject: s,
            op,
            value: v,
            ..
        } => {
            format!("{} {} {}", subject(s), cmp_op(*op), value(v))
        }
        ExprKind::Bare(s) => subject(s),
        ExprKind::HasHeader(h) => format!("has header({})", string(&h.value)),
    }
}

fn subject(s: &Subject) -> String {
    match s {
        Subject::Word(w) => w.name.clone(),
        Subject::Header(h) => format!("header({})", string(&h.value)),
    }
}

fn cmp_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Matches => "matches",
        CmpOp::In => "in",
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => string(&s.value),
        Value::List(items, _) => {
            let items: Vec<String> = items.iter().map(|s| string(&s.value)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Quantity(q) => quantity(q),
        Value::Bool(b, _) => b.to_string(),
    }
}

pub(super) fn trigger(t: &Trigger) -> String {
    match &t.kind {
        TriggerKind::Status(pats) => {
            let pats: Vec<String> = pats.iter().map(status).collect();
            match pats.as_slice() {
                [one] => format!("status {one}"),
                _ => format!("status in [{}]", pats.join(", ")),
            }
        }
        TriggerKind::Error(class) => class.name.clone(),
        TriggerKind::ErrorRate { threshold, window } => {
            format!(
                "error_rate > {} over {}",
                quantity(threshold),
                quantity(window)
            )
        }
        TriggerKind::Latency {
            metric,
            threshold,
            window,
            min_samples,
        } => {
            let mut text = format!(
                "{} > {} over {}",
                latency(metric),
                quantity(threshold),
                quantity(window)
            );
            if let Some(n) = min_samples {
                let _ = write!(text, " min_samples {}", quantity(n));
            }
            text
        }
    }
}

fn status(p: &StatusPattern) -> String {
    match p {
        StatusPattern::Code(q) => quantity(q),
        StatusPattern::Class(c) => c.name.clone(),
        StatusPattern::Range(a, b) => format!("{}..{}", quantity(a), quantity(b)),
    }
}

pub(super) fn latency(l: &LatencyRef) -> String {
    format!("{}({})", l.percentile.name, l.metric.name)
}

/// A number exactly as written: `$` before the digits for money, any other unit after.
pub(super) fn quantity(q: &Quantity) -> String {
    if q.unit == "$" {
        format!("${}", q.value)
    } else {
        format!("{}{}", q.value, q.unit)
    }
}

pub(super) fn target(t: &TargetRef) -> String {
    let model = if t.quoted {
        string(&t.model)
    } else {
        t.model.clone()
    };
    format!("{}/{model}", t.provider.name)
}

pub(super) fn targets(ts: &[TargetRef]) -> String {
    ts.iter().map(target).collect::<Vec<_>>().join(", ")
}

/// A string literal with `"` and `\` escaped.
pub(super) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether `s` can be written bare where a name goes (`for route NAME`).
pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
