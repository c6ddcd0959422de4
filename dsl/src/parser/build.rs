//! pest pairs → [`crate::ast`] nodes. Pairs never leave this module and the driver.
//!
//! Every function takes the pair and the byte offset of the text pest was given inside the
//! whole source, so spans point into `Source::text`. The grammar guarantees the shape of each
//! pair; where a child is nevertheless missing the builder returns `None` and the driver
//! reports an internal error instead of panicking.

mod expr;

use pest::iterators::{Pair, Pairs};

use super::grammar::Rule;
use crate::ast::*;

/// The children of a pair that carry meaning: punctuation pairs are skipped.
struct Kids<'i> {
    it: Pairs<'i, Rule>,
}

impl<'i> Iterator for Kids<'i> {
    type Item = Pair<'i, Rule>;

    fn next(&mut self) -> Option<Self::Item> {
        self.it.by_ref().find(|p| !is_punct(p.as_rule()))
    }
}

fn is_punct(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        lbrace | rbrace | lparen | rparen | lbracket | rbracket | comma | dots | gt | slash
    )
}

fn kids(pair: Pair<'_, Rule>) -> Kids<'_> {
    Kids {
        it: pair.into_inner(),
    }
}

/// The single meaningful child of `pair`.
fn only(pair: Pair<'_, Rule>) -> Option<Pair<'_, Rule>> {
    kids(pair).next()
}

/// Converts pest positions to spans in the whole source.
#[derive(Clone, Copy, Debug)]
pub(super) struct Builder {
    /// Byte offset of the text pest parsed.
    pub off: usize,
}

impl Builder {
    /// The span of `pair` without the whitespace and comments pest includes after a rule that
    /// ends in an optional or repeated part.
    fn span(self, pair: &Pair<'_, Rule>) -> Span {
        let start = self.off + pair.as_span().start();
        Span::new(start, start + code_len(pair.as_str()))
    }

    fn ident(self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    /// The name in a `route NAME {` / `budget NAME {` header.
    pub fn header_name(self, header: Pair<'_, Rule>) -> Option<Ident> {
        kids(header)
            .find(|p| p.as_rule() == Rule::name)
            .map(|p| self.ident(&p))
    }

    fn string(self, pair: &Pair<'_, Rule>) -> StrLit {
        let raw = pair.as_str();
        let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
        StrLit {
            value: unescape(inner),
            span: self.span(pair),
        }
    }

    fn quantity(self, pair: &Pair<'_, Rule>) -> Quantity {
        let text = pair.as_str();
        let span = self.span(pair);
        if let Some(dollars) = text.strip_prefix('$') {
            return Quantity {
                value: dollars.to_string(),
                unit: "$".to_string(),
                span,
            };
        }
        let digits = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        Quantity {
            value: text[..digits].to_string(),
            unit: text[digits..].to_string(),
            span,
        }
    }

    fn target(self, pair: Pair<'_, Rule>) -> Option<TargetRef> {
        let span = self.span(&pair);
        let mut k = kids(pair);
        let provider = self.ident(&k.next()?);
        let model = k.next()?;
        let quoted = model.as_rule() == Rule::string;
        let model_span = self.span(&model);
        let model = if quoted {
            self.string(&model).value
        } else {
            model.as_str().to_string()
        };
        Some(TargetRef {
            provider,
            model,
            model_span,
            quoted,
            span,
        })
    }

    fn latency(self, pair: Pair<'_, Rule>) -> Option<LatencyRef> {
        let span = self.span(&pair);
        let mut k = kids(pair);
        let percentile = self.ident(&k.next()?);
        let metric = self.ident(&k.next()?);
        Some(LatencyRef {
            percentile,
            metric,
            span,
        })
    }

    /// An `affinity_key` pair: `key`, or `header("x")` and the like.
    fn affinity_by(self, pair: Pair<'_, Rule>) -> Option<AffinityBy> {
        let span = self.span(&pair);
        let mut k = kids(pair);
        let name = self.ident(&k.next()?);
        let arg = k.next().map(|p| match p.as_rule() {
            Rule::string => AffinityArg::Str(self.string(&p)),
            _ => AffinityArg::Quantity(self.quantity(&p)),
        });
        Some(AffinityBy { name, arg, span })
    }

    /// Targets among the children, in order.
    fn targets<'i>(self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Option<Vec<TargetRef>> {
        pairs
            .filter(|p| p.as_rule() == Rule::target)
            .map(|p| self.target(p))
            .collect()
    }

    /// A `route_stmt` pair.
    pub fn route_stmt(self, pair: Pair<'_, Rule>) -> Option<RouteStmt> {
        let stmt = only(pair)?;
        let span = self.span(&stmt);
        let rule = stmt.as_rule();
        let mut k = kids(stmt).skip(1); // the statement keyword
        let kind = match rule {
            Rule::when_stmt => RouteStmtKind::When(self.expr(only(k.next()?)?)?),
            Rule::use_stmt => RouteStmtKind::Use(self.target(k.next()?)?),
            Rule::split_stmt => RouteStmtKind::Split(
                k.map(|arm| {
                    let span = self.span(&arm);
                    let mut a = kids(arm);
                    let weight = self.quantity(&a.next()?);
                    Some(SplitArm {
                        weight,
                        target: self.target(a.next()?)?,
                        span,
                    })
                })
                .collect::<Option<_>>()?,
            ),
            Rule::cheapest_stmt => RouteStmtKind::Cheapest(self.targets(k)?),
            Rule::fastest_stmt => {
                let rest: Vec<_> = k.collect();
                let by = rest.iter().find(|p| p.as_rule() == Rule::latency_ref);
                let explore = rest.iter().find(|p| p.as_rule() == Rule::quantity);
                RouteStmtKind::Fastest {
                    targets: self.targets(rest.iter().cloned())?,
                    by: match by {
                        Some(p) => Some(self.latency(p.clone())?),
                        None => None,
                    },
                    explore: explore.map(|p| self.quantity(p)),
                }
            }
            Rule::failover_stmt => {
                let rest: Vec<_> = k.collect();
                RouteStmtKind::Failover {
                    targets: self.targets(rest.iter().cloned())?,
                    triggers: rest
                        .into_iter()
                        .filter(|p| p.as_rule() == Rule::trigger)
                        .map(|p| self.trigger(p))
                        .collect::<Option<_>>()?,
                }
            }
            Rule::retry_stmt => {
                let q: Vec<_> = k
                    .filter(|p| p.as_rule() == Rule::quantity)
                    .map(|p| self.quantity(&p))
                    .collect();
                let mut q = q.into_iter();
                let count = q.next()?;
                let backoff = q.next().zip(q.next());
                RouteStmtKind::Retry { count, backoff }
            }
            Rule::timeout_stmt => RouteStmtKind::Timeout(
                k.map(|item| {
                    let mut i = kids(item);
                    Some((self.ident(&i.next()?), self.quantity(&i.next()?)))
                })
                .collect::<Option<_>>()?,
            ),
            Rule::hedge_stmt => {
                let after = k.find(|p| p.as_rule() != Rule::kw_after)?;
                RouteStmtKind::Hedge(match after.as_rule() {
                    Rule::latency_ref => HedgeAfter::Percentile(self.latency(after)?),
                    _ => HedgeAfter::Fixed(self.quantity(&after)),
                })
            }
            Rule::cache_stmt => {
                RouteStmtKind::Cache(self.quantity(&k.find(|p| p.as_rule() == Rule::quantity)?))
            }
            Rule::affinity_stmt => {
                let rest: Vec<_> = k.collect();
                let key = rest.iter().find(|p| p.as_rule() == Rule::affinity_key)?;
                RouteStmtKind::Affinity {
                    by: self.affinity_by(key.clone())?,
                    idle: rest
                        .iter()
                        .find(|p| p.as_rule() == Rule::quantity)
                        .map(|p| self.quantity(p)),
                }
            }
            _ => return None,
        };
        Some(RouteStmt { kind, span })
    }

    /// A `budget_stmt` pair.
    pub fn budget_stmt(self, pair: Pair<'_, Rule>) -> Option<BudgetStmt> {
        let stmt = only(pair)?;
        let span = self.span(&stmt);
        let rule = stmt.as_rule();
        let mut k = kids(stmt);
        let kind = match rule {
            Rule::for_stmt => BudgetStmtKind::For(self.scope(k.nth(1)?)),
            Rule::limit_stmt => BudgetStmtKind::Limit(
                k.skip(1)
                    .map(|limit| {
                        let span = self.span(&limit);
                        let mut l = kids(limit).filter(|p| p.as_rule() != Rule::kw_per);
                        let amount = self.quantity(&l.next()?);
                        let mut next = l.next()?;
                        let metric = if next.as_rule() == Rule::metric {
                            let m = self.ident(&next);
                            next = l.next()?;
                            Some(m)
                        } else {
                            None
                        };
                        Some(Limit {
                            amount,
                            metric,
                            window: self.ident(&next),
                            span,
                        })
                    })
                    .collect::<Option<_>>()?,
            ),
            Rule::warn_stmt => BudgetStmtKind::Warn(
                k.filter(|p| p.as_rule() == Rule::quantity)
                    .map(|p| self.quantity(&p))
                    .collect(),
            ),
            Rule::on_exhausted_stmt => {
                let what = k.nth(2)?;
                BudgetStmtKind::OnExhausted(match what.as_rule() {
                    Rule::kw_reject => Exhausted::Reject(self.span(&what)),
                    _ => {
                        Exhausted::Downgrade(self.target(k.find(|p| p.as_rule() == Rule::target)?)?)
                    }
                })
            }
            Rule::on_overrun_stmt => BudgetStmtKind::OnOverrun(self.ident(&k.nth(2)?)),
            _ => return None,
        };
        Some(BudgetStmt { kind, span })
    }

    fn scope(self, pair: Pair<'_, Rule>) -> Scope {
        let span = self.span(&pair);
        let mut scope = Scope {
            each: false,
            subject: Ident {
                name: String::new(),
                span,
            },
            value: None,
            header: None,
            span,
        };
        let mut after_in = false;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::kw_each => scope.each = true,
                Rule::kw_route | Rule::scope_subject => scope.subject = self.ident(&p),
                Rule::kw_in => after_in = true,
                Rule::string if after_in => scope.header = Some(self.string(&p)),
                Rule::string => scope.value = Some(self.string(&p)),
                Rule::name => {
                    scope.value = Some(StrLit {
                        value: p.as_str().to_string(),
                        span: self.span(&p),
                    })
                }
                _ => {}
            }
        }
        scope
    }
}

/// The length of `text` without trailing whitespace and comments.
pub(super) fn code_len(text: &str) -> usize {
    let mut text = text.trim_end();
    loop {
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        let (mut in_str, mut escaped) = (false, false);
        let comment = text[line_start..].char_indices().find_map(|(i, c)| {
            if in_str {
                in_str = escaped || c != '"';
                escaped = !escaped && c == '\\';
            } else if c == '"' {
                in_str = true;
            } else if c == '#' {
                return Some(line_start + i);
            }
            None
        });
        match comment {
            Some(at) => text = text[..at].trim_end(),
            None => return text.len(),
        }
    }
}

/// Removes the backslash of `\"` and `\\` (and, leniently, of any other escape: the scan has
/// already reported those).
pub(super) fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}
