//! The simulation report: the same numbers as a table for people and as JSON for tools.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use switchyard_dsl::ir::{Limit, LimitMetric, Snapshot, Window};

use super::SimulateArgs;
use super::replay::{Fate, Replay, Tally};

/// What was read from the log.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub records: u64,
    /// Other log lines, and requests that never reached routing.
    pub skipped: u64,
    pub malformed: u64,
    pub first_malformed: Option<String>,
    /// Records of a newer schema version than this tool knows.
    pub newer: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
}

impl Stats {
    pub fn see(&mut self, time: u64) {
        self.first = Some(self.first.map_or(time, |f| f.min(time)));
        self.last = Some(self.last.map_or(time, |l| l.max(time)));
    }

    /// The span of the log in days (at least one second).
    fn days(&self) -> f64 {
        match (self.first, self.last) {
            (Some(f), Some(l)) => (l.saturating_sub(f).max(1)) as f64 / 86_400.0,
            _ => 0.0,
        }
    }
}

/// How records moved from the old policy's fate to the new one's.
#[derive(Debug, Default)]
pub(crate) struct Moves {
    pairs: HashMap<(Fate, Fate), u64>,
}

impl Moves {
    pub fn count(&mut self, before: Fate, after: Fate) {
        *self.pairs.entry((before, after)).or_insert(0) += 1;
    }
}

/// `route → provider/model`, `404 no route` or `429 budget NAME`.
fn fate_name(snapshot: &Snapshot, fate: Fate) -> String {
    match fate {
        Fate::NotFound => "404 no route".into(),
        Fate::Rejected { budget, .. } => {
            format!("429 budget {}", snapshot.budgets[budget].name)
        }
        Fate::Served { route, target, .. } => format!(
            "{} → {}",
            snapshot.routes[route].name,
            snapshot.target_name(target)
        ),
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub policy: String,
    pub traffic: String,
    pub records: u64,
    pub skipped_lines: u64,
    pub malformed_lines: u64,
    /// RFC 3339 of the first and last record.
    pub from: Option<String>,
    pub to: Option<String>,
    pub days: f64,
    pub routes: Vec<RouteRow>,
    /// Requests no route matches (the proxy answers 404).
    pub not_found: u64,
    pub rejected: Vec<Rejected>,
    pub cost_usd: f64,
    pub cost_per_day_usd: f64,
    pub budgets: Vec<BudgetRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteRow {
    pub route: String,
    pub target: String,
    pub requests: u64,
    pub request_share: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub token_share: f64,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Rejected {
    pub budget: String,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct BudgetRow {
    pub budget: String,
    pub scope: String,
    pub limit: String,
    /// RFC 3339 of the first request that reached the limit.
    pub first_exhausted_at: String,
    /// How many of the limit's windows ran out.
    pub windows_exhausted: u64,
    pub rejected: u64,
    pub downgraded: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Diff {
    pub against: String,
    /// Requests whose route or target (or 404/429 outcome) changes.
    pub changed: u64,
    pub changed_share: f64,
    pub moves: Vec<Move>,
    pub old_cost_usd: f64,
    pub new_cost_usd: f64,
    pub cost_delta_per_day_usd: f64,
    /// Requests that were routed before and get 404 now.
    pub new_not_found: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Move {
    pub from: String,
    pub to: String,
    pub requests: u64,
}

fn usd(micro: u64) -> f64 {
    micro as f64 / 1e6
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

fn total_cost(replay: &Replay<'_>) -> u64 {
    replay.served.values().map(|t| t.micro_usd).sum()
}

fn limit_text(limit: &Limit) -> String {
    let amount = match limit.metric {
        LimitMetric::MicroUsd => format!("${}", usd(limit.amount)),
        LimitMetric::Requests => format!("{} requests", limit.amount),
        LimitMetric::InputTokens => format!("{} input tokens", limit.amount),
        LimitMetric::OutputTokens => format!("{} output tokens", limit.amount),
        LimitMetric::TotalTokens => format!("{} tokens", limit.amount),
    };
    let per = match limit.window {
        Window::Second => "second",
        Window::Minute => "minute",
        Window::Hour => "hour",
        Window::Day => "day",
        Window::Month => "month",
    };
    format!("{amount} per {per}")
}

impl Summary {
    pub fn new(
        args: &SimulateArgs,
        stats: &Stats,
        replay: &Replay<'_>,
        against: Option<(&Replay<'_>, &Moves)>,
    ) -> Self {
        let snapshot = replay.snapshot;
        let tokens: u64 = replay.served.values().map(|t| t.input + t.output).sum();
        let routes = replay
            .served
            .iter()
            .map(|(&(route, target), t): (&_, &Tally)| RouteRow {
                route: snapshot.routes[route].name.clone(),
                target: snapshot.target_name(target),
                requests: t.requests,
                request_share: share(t.requests, stats.records),
                input_tokens: t.input,
                output_tokens: t.output,
                token_share: share(t.input + t.output, tokens),
                cost_usd: usd(t.micro_usd),
            })
            .collect();
        let rejected = replay
            .rejected
            .iter()
            .map(|(&b, t)| Rejected {
                budget: snapshot.budgets[b].name.clone(),
                requests: t.requests,
            })
            .collect();
        let budgets = replay
            .exhausted
            .iter()
            .map(|(&(b, scope, limit), e)| BudgetRow {
                budget: snapshot.budgets[b].name.clone(),
                scope: replay.scopes.get(&(b, scope)).cloned().unwrap_or_default(),
                limit: limit_text(&snapshot.budgets[b].limits[limit]),
                first_exhausted_at: rfc3339(e.first_at),
                windows_exhausted: e.windows,
                rejected: e.rejected,
                downgraded: e.downgraded,
            })
            .collect();
        let days = stats.days();
        let per_day = |micro: u64| if days > 0.0 { usd(micro) / days } else { 0.0 };
        let cost = total_cost(replay);
        let diff = against.map(|(old, moves)| {
            let mut changed = 0;
            let mut new_not_found = 0;
            let mut by_name: HashMap<(String, String), u64> = HashMap::new();
            for (&(before, after), &n) in &moves.pairs {
                let (from, to) = (fate_name(old.snapshot, before), fate_name(snapshot, after));
                if from != to {
                    changed += n;
                    *by_name.entry((from, to)).or_insert(0) += n;
                }
                if after == Fate::NotFound && before != Fate::NotFound {
                    new_not_found += n;
                }
            }
            let mut moves: Vec<Move> = by_name
                .into_iter()
                .map(|((from, to), requests)| Move { from, to, requests })
                .collect();
            moves.sort_by(|a, b| {
                b.requests
                    .cmp(&a.requests)
                    .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
            });
            let old_cost = total_cost(old);
            Diff {
                against: args
                    .against
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                changed,
                changed_share: share(changed, stats.records),
                moves,
                old_cost_usd: usd(old_cost),
                new_cost_usd: usd(cost),
                cost_delta_per_day_usd: per_day(cost) - per_day(old_cost),
                new_not_found,
            }
        });
        Self {
            policy: args.policy.display().to_string(),
            traffic: args.traffic.display().to_string(),
            records: stats.records,
            skipped_lines: stats.skipped,
            malformed_lines: stats.malformed,
            from: stats.first.map(rfc3339),
            to: stats.last.map(rfc3339),
            days,
            routes,
            not_found: replay.not_found.requests,
            rejected,
            cost_usd: usd(cost),
            cost_per_day_usd: per_day(cost),
            budgets,
            diff,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replayed {} requests from {} through {} ({} other lines skipped)",
            self.records, self.traffic, self.policy, self.skipped_lines
        )?;
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            writeln!(f, "traffic from {from} to {to} ({:.2} days)", self.days)?;
        }
        writeln!(f)?;
        let mut rows = vec![[
            "route".to_string(),
            "target".into(),
            "requests".into(),
            "share".into(),
            "tokens".into(),
            "share".into(),
            "cost".into(),
        ]];
        for r in &self.routes {
            rows.push([
                r.route.clone(),
                r.target.clone(),
                r.requests.to_string(),
                format!("{:.1}%", r.request_share * 100.0),
                (r.input_tokens + r.output_tokens).to_string(),
                format!("{:.1}%", r.token_share * 100.0),
                format!("${:.2}", r.cost_usd),
            ]);
        }
        let share = |n: u64| format!("{:.1}%", 100.0 * n as f64 / self.records.max(1) as f64);
        if self.not_found > 0 {
            rows.push([
                "(no route: 404)".into(),
                "-".into(),
                self.not_found.to_string(),
                share(self.not_found),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for r in &self.rejected {
            rows.push([
                format!("(429: budget {})", r.budget),
                "-".into(),
                r.requests.to_string(),
                share(r.requests),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        table(f, &rows)?;
        writeln!(
            f,
            "\nestimated cost: ${:.2} (${:.2} per day)",
            self.cost_usd, self.cost_per_day_usd
        )?;
        if self.budgets.is_empty() {
            writeln!(f, "\nno budget would be exhausted")?;
        } else {
            writeln!(f, "\nbudgets that would be exhausted:")?;
            let mut rows = vec![[
                "budget".to_string(),
                "scope".into(),
                "limit".into(),
                "first exhausted at".into(),
                "windows".into(),
                "rejected".into(),
                "downgraded".into(),
            ]];
            for b in &self.budgets {
                rows.push([
                    b.budget.clone(),
                    b.scope.clone(),
                    b.limit.clone(),
                    b.first_exhausted_at.clone(),
                    b.windows_exhausted.to_string(),
                    b.rejected.to_string(),
                    b.downgraded.to_string(),
                ]);
            }
            table(f, &rows)?;
        }
        if let Some(d) = &self.diff {
            writeln!(f, "\nagainst {}:", d.against)?;
            writeln!(
                f,
                "  {} requests change route or target ({:.1}%); {} new 404s",
                d.changed,
                d.changed_share * 100.0,
                d.new_not_found
            )?;
            writeln!(
                f,
                "  cost ${:.2} -> ${:.2}: {:+.2} $/day",
                d.old_cost_usd, d.new_cost_usd, d.cost_delta_per_day_usd
            )?;
            if !d.moves.is_empty() {
                let mut rows = vec![["from".to_string(), "to".into(), "requests".into()]];
                for m in &d.moves {
                    rows.push([m.from.clone(), m.to.clone(), m.requests.to_string()]);
                }
                table(f, &rows)?;
            }
        }
        Ok(())
    }
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(f: &mut fmt::Formatter<'_>, rows: &[[String; N]]) -> fmt::Result {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from(" ");
        for (w, cell) in widths.iter().zip(row) {
            line.push_str(&format!(" {cell:<w$} "));
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}
