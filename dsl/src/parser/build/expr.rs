//! Conditions and failover triggers: the recursive part of the tree.

use pest::iterators::Pair;

use super::{Builder, kids, only};
use crate::ast::*;
use crate::parser::grammar::Rule;

impl Builder {
    /// An `or_expr`, `and_expr` or `not_expr` pair.
    pub(super) fn expr(self, pair: Pair<'_, Rule>) -> Option<Expr> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::or_expr | Rule::and_expr => {
                let is_or = pair.as_rule() == Rule::or_expr;
                // A plain loop, not iterator adapters: this recursion runs once per nesting
                // level, and every adapter would add a stack frame per level in debug builds.
                let mut ops = Vec::new();
                for p in kids(pair) {
                    if !matches!(p.as_rule(), Rule::kw_or | Rule::kw_and) {
                        ops.push(self.expr(p)?);
                    }
                }
                if ops.len() == 1 {
                    return ops.pop();
                }
                if is_or {
                    ExprKind::Or(ops)
                } else {
                    ExprKind::And(ops)
                }
            }
            Rule::not_expr => {
                let mut k = kids(pair);
                let first = k.next()?;
                match first.as_rule() {
                    Rule::kw_not => ExprKind::Not(Box::new(self.expr(k.next()?)?)),
                    _ => return self.operand(first),
                }
            }
            _ => return None,
        };
        Some(Expr { kind, span })
    }

    /// The operand of a `not_expr`: parentheses, `has header(..)`, a comparison or a subject.
    fn operand(self, pair: Pair<'_, Rule>) -> Option<Expr> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::paren_expr => return self.expr(only(pair)?),
            Rule::has_header => {
                ExprKind::HasHeader(self.string(&kids(pair).find(|p| p.as_rule() == Rule::string)?))
            }
            Rule::bare => ExprKind::Bare(self.subject(only(pair)?)?),
            Rule::comparison => {
                let mut k = kids(pair);
                let subject = self.subject(k.next()?)?;
                let op_pair = k.next()?;
                let op = match op_pair.as_str() {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    "in" => CmpOp::In,
                    "matches" => CmpOp::Matches,
                    _ => return None,
                };
                let value = self.value(only(k.next()?)?)?;
                ExprKind::Compare {
                    subject,
                    op,
                    op_span: self.span(&op_pair),
                    value,
                }
            }
            _ => return None,
        };
        Some(Expr { kind, span })
    }

    fn subject(self, pair: Pair<'_, Rule>) -> Option<Subject> {
        let inner = only(pair)?;
        Some(match inner.as_rule() {
            Rule::header_subject => {
                Subject::Header(self.string(&kids(inner).find(|p| p.as_rule() == Rule::string)?))
            }
            _ => Subject::Word(self.ident(&inner)),
        })
    }

    fn value(self, pair: Pair<'_, Rule>) -> Option<Value> {
        Some(match pair.as_rule() {
            Rule::string => Value::Str(self.string(&pair)),
            Rule::bool => Value::Bool(pair.as_str() == "true", self.span(&pair)),
            Rule::quantity => Value::Quantity(self.quantity(&pair)),
            Rule::list => {
                let span = self.span(&pair);
                Value::List(kids(pair).map(|p| self.string(&p)).collect(), span)
            }
            _ => return None,
        })
    }

    pub(super) fn trigger(self, pair: Pair<'_, Rule>) -> Option<Trigger> {
        let span = self.span(&pair);
        let inner = only(pair)?;
        let rule = inner.as_rule();
        let kind = match rule {
            Rule::error_class => TriggerKind::Error(self.ident(&inner)),
            Rule::status_trigger => {
                let mut pats = Vec::new();
                for p in kids(inner) {
                    match p.as_rule() {
                        Rule::status_list => {
                            for q in kids(p) {
                                pats.push(self.status(q)?);
                            }
                        }
                        Rule::kw_status | Rule::kw_in => {}
                        _ => pats.push(self.status(p)?),
                    }
                }
                TriggerKind::Status(pats)
            }
            Rule::error_rate_trigger | Rule::latency_trigger => {
                let rest: Vec<_> = kids(inner).collect();
                let mut q = rest.iter().filter(|p| p.as_rule() == Rule::quantity);
                let threshold = self.quantity(q.next()?);
                let window = self.quantity(q.next()?);
                if rule == Rule::error_rate_trigger {
                    TriggerKind::ErrorRate { threshold, window }
                } else {
                    TriggerKind::Latency {
                        metric: self.latency(rest.first()?.clone())?,
                        threshold,
                        window,
                        min_samples: q.next().map(|p| self.quantity(p)),
                    }
                }
            }
            _ => return None,
        };
        Some(Trigger { kind, span })
    }

    fn status(self, pair: Pair<'_, Rule>) -> Option<StatusPattern> {
        Some(match pair.as_rule() {
            Rule::status_class => StatusPattern::Class(self.ident(&pair)),
            Rule::status_code => StatusPattern::Code(self.quantity(&only(pair)?)),
            Rule::status_range => {
                let mut k = kids(pair);
                StatusPattern::Range(self.quantity(&k.next()?), self.quantity(&k.next()?))
            }
            _ => return None,
        })
    }
}
