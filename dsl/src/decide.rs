//! The per-request route decision: first matching route, primary target, candidate order and
//! applicable budgets, without allocating.
//!
//! This runs on every proxied request, so it reads the request through [`RequestFeatures`]
//! (the proxy implements it over its own types, nothing is copied) and returns borrowed views
//! into the [`Snapshot`]. Candidates and budgets are lazy iterators over snapshot data.

use crate::affinity;
use crate::ir::{
    AffinityKey, Budget, BudgetScope, Condition, NumOp, Route, Selection, Snapshot, StringMatch,
    TargetId,
};

/// What the decision needs to know about a request.
pub trait RequestFeatures {
    /// The `model` field of the request body.
    fn model(&self) -> &str;
    /// A request header by its lower-case name; implementations compare case-insensitively.
    fn header(&self, lower_case_name: &str) -> Option<&str>;
    /// The client key id, when the request was authenticated.
    fn key(&self) -> Option<&str>;
    /// The client key's team.
    fn team(&self) -> Option<&str>;
    /// The client key's user.
    fn user(&self) -> Option<&str>;
    /// Estimated prompt tokens.
    fn prompt_tokens(&self) -> u64;
    /// Whether the request asks for a streamed response.
    fn stream(&self) -> bool;
    /// The hash of the request's session key for route `route`'s `affinity by key`
    /// ([`affinity::session_hash`]); `None` when the request has no such key (it is then drawn
    /// by weight like any other). This default answers headers, the client key and the user;
    /// body fields and `prefix(N)` need the body, which the data plane (and
    /// [`affinity::WithBody`]) provide.
    fn session(&self, route: &str, key: &AffinityKey) -> Option<u64> {
        affinity::identity_session(self, route, key)
    }
}

/// A borrowed request description, for tests, benches and `switchyard explain`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestView<'a> {
    pub model: &'a str,
    /// Header names are matched case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
    pub key: Option<&'a str>,
    pub team: Option<&'a str>,
    pub user: Option<&'a str>,
    pub prompt_tokens: u64,
    pub stream: bool,
}

impl RequestFeatures for RequestView<'_> {
    fn model(&self) -> &str {
        self.model
    }
    fn header(&self, lower_case_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower_case_name))
            .map(|&(_, v)| v)
    }
    fn key(&self) -> Option<&str> {
        self.key
    }
    fn team(&self) -> Option<&str> {
        self.team
    }
    fn user(&self) -> Option<&str> {
        self.user
    }
    fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens
    }
    fn stream(&self) -> bool {
        self.stream
    }
}

/// The outcome for one request: which route, which target first, and in what order to fall
/// back. Borrows the snapshot; cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Decision<'s> {
    snapshot: &'s Snapshot,
    route_index: usize,
    primary: TargetId,
    arm: Option<usize>,
    session: Option<u64>,
}

impl<'s> Decision<'s> {
    /// The session hash when the route has `affinity` and the request a session key. A split's
    /// arm was then chosen by [`affinity::choose`], not by the draw.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// Index of the matched route in [`Snapshot::routes`].
    pub fn route_index(&self) -> usize {
        self.route_index
    }

    /// The matched route (timeouts, retry, hedge, cache and triggers live here).
    pub fn route(&self) -> &'s Route {
        &self.snapshot.routes[self.route_index]
    }

    /// The first target to try. For `fastest` this is the first listed: the data plane
    /// re-ranks by its measurements.
    pub fn primary(&self) -> TargetId {
        self.primary
    }

    /// For a split, the index of the arm the draw chose.
    pub fn split_arm(&self) -> Option<usize> {
        self.arm
    }

    /// Every candidate in the order to try: the primary, the rest of a `cheapest`/`fastest`
    /// selection, then the failover targets; each target once.
    pub fn candidates(&self) -> Candidates<'s> {
        let rest: &'s [TargetId] = match &self.route().selection {
            Selection::Cheapest(ts) | Selection::Fastest { targets: ts, .. } => ts,
            Selection::Single(_) | Selection::Split(_) => &[],
        };
        Candidates {
            primary: self.primary,
            rest,
            failover: &self.route().failover,
            pos: 0,
        }
    }

    /// The budgets that count this request, with their index in [`Snapshot::budgets`].
    pub fn budgets<'r, R: RequestFeatures + ?Sized>(
        &self,
        request: &'r R,
    ) -> impl Iterator<Item = (usize, &'s Budget)> + use<'s, 'r, R> {
        let route = &self.route().name;
        self.snapshot
            .budgets
            .iter()
            .enumerate()
            .filter(move |(_, b)| budget_applies(&b.scope, route, request))
    }
}

/// Iterator over a decision's candidates; see [`Decision::candidates`].
#[derive(Clone, Debug)]
pub struct Candidates<'s> {
    primary: TargetId,
    rest: &'s [TargetId],
    failover: &'s [TargetId],
    pos: usize,
}

impl Candidates<'_> {
    /// The candidate at position `i` of the sequence with duplicates still in.
    fn at(&self, i: usize) -> Option<TargetId> {
        if i == 0 {
            return Some(self.primary);
        }
        let i = i - 1;
        match self.rest.get(i) {
            Some(t) => Some(*t),
            None => self.failover.get(i - self.rest.len()).copied(),
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = TargetId;

    fn next(&mut self) -> Option<TargetId> {
        loop {
            let t = self.at(self.pos)?;
            let i = self.pos;
            self.pos += 1;
            if !(0..i).any(|j| self.at(j) == Some(t)) {
                return Some(t);
            }
        }
    }
}

/// Picks the route for `request`; `draw` is uniform in `[0, 1)` and chooses a split arm
/// (unless the route's `affinity` maps the request's session to one).
/// `None` means no route matches (the proxy answers `404`).
///
/// The first route in policy order whose condition holds wins. Only the routes the
/// snapshot's [`crate::index::RouteIndex`] lists for the request's model (plus the routes that
/// match any model) are evaluated, so the cost follows those, not the size of the policy.
pub fn decide<'s, R: RequestFeatures + ?Sized>(
    snapshot: &'s Snapshot,
    request: &R,
    draw: f64,
) -> Option<Decision<'s>> {
    let index = snapshot.index();
    debug_assert_eq!(
        index.route_count(),
        snapshot.routes.len(),
        "stale route index: call Snapshot::reindex after editing routes"
    );
    let (route_index, route) = index
        .candidates(request.model())
        .filter_map(|i| snapshot.routes.get(i).map(|r| (i, r)))
        .find(|(_, r)| eval(&r.condition, request))?;
    let session = route
        .affinity
        .as_ref()
        .and_then(|a| request.session(&route.name, &a.by));
    let (primary, arm) = match &route.selection {
        Selection::Single(t) => (*t, None),
        Selection::Cheapest(ts) | Selection::Fastest { targets: ts, .. } => (*ts.first()?, None),
        Selection::Split(arms) => {
            let i = match session {
                Some(s) => affinity::choose(snapshot, arms, s, |_| true)?,
                None => pick_weighted(arms.iter().map(|a| a.weight), draw)?,
            };
            (arms[i].target, Some(i))
        }
    };
    Some(Decision {
        snapshot,
        route_index,
        primary,
        arm,
        session,
    })
}

/// Index chosen by `draw` over cumulative `weights`; the first arm when all weights are zero.
pub fn pick_weighted(weights: impl Iterator<Item = u32> + Clone, draw: f64) -> Option<usize> {
    let total: u64 = weights.clone().map(u64::from).sum();
    let draw = if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let point = draw * total as f64;
    let mut cumulative = 0u64;
    let mut last = None;
    for (i, w) in weights.enumerate() {
        cumulative += u64::from(w);
        if w > 0 {
            last = Some(i);
            if point < cumulative as f64 {
                return Some(i);
            }
        } else if last.is_none() && total == 0 {
            return Some(i);
        }
    }
    last
}

/// Whether `condition` holds for `request`.
pub fn eval<R: RequestFeatures + ?Sized>(condition: &Condition, request: &R) -> bool {
    match condition {
        Condition::Always => true,
        Condition::All(cs) => cs.iter().all(|c| eval(c, request)),
        Condition::Any(cs) => cs.iter().any(|c| eval(c, request)),
        Condition::Not(c) => !eval(c, request),
        Condition::Model(m) => string_match(m, request.model()),
        Condition::Header { name, matches } => request
            .header(name)
            .is_some_and(|v| string_match(matches, v)),
        Condition::HasHeader(name) => request.header(name).is_some(),
        Condition::Key(m) => request.key().is_some_and(|v| string_match(m, v)),
        Condition::Team(m) => request.team().is_some_and(|v| string_match(m, v)),
        Condition::User(m) => request.user().is_some_and(|v| string_match(m, v)),
        Condition::PromptTokens { op, value } => {
            let n = request.prompt_tokens();
            match op {
                NumOp::Eq => n == *value,
                NumOp::Ne => n != *value,
                NumOp::Lt => n < *value,
                NumOp::Le => n <= *value,
                NumOp::Gt => n > *value,
                NumOp::Ge => n >= *value,
            }
        }
        Condition::Stream(b) => request.stream() == *b,
    }
}

/// Whether `value` satisfies a string match.
pub fn string_match(m: &StringMatch, value: &str) -> bool {
    match m {
        StringMatch::Exact(s) => s == value,
        StringMatch::OneOf(ss) => ss.iter().any(|s| s == value),
        StringMatch::Glob(g) => glob_match(g, value),
    }
}

fn budget_applies<R: RequestFeatures + ?Sized>(
    scope: &BudgetScope,
    route: &str,
    request: &R,
) -> bool {
    match scope {
        BudgetScope::Global => true,
        BudgetScope::Key(k) => request.key() == Some(k.as_str()),
        BudgetScope::Team(t) => request.team() == Some(t.as_str()),
        BudgetScope::User(u) => request.user() == Some(u.as_str()),
        BudgetScope::EachKey => request.key().is_some(),
        BudgetScope::EachTeam => request.team().is_some(),
        BudgetScope::EachUser => request.user().is_some(),
        BudgetScope::EachHeaderValue(h) => request.header(h).is_some(),
        BudgetScope::Route(r) => r == route,
    }
}

/// Length of the UTF-8 sequence starting with byte `b`.
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        _ => 1,
    }
}

/// Glob match without allocating: `*` matches any run (including `/`), `?` one character.
/// Linear backtracking to the last `*`, so no pattern can make it exponential.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                ti += utf8_len(t[ti]);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    let next = st + utf8_len(t[st]);
                    star = Some((sp, next));
                    pi = sp;
                    ti = next;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("gpt-4*", "gpt-4o"));
        assert!(glob_match("gpt-4*", "gpt-4"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a/x/b/y/c"));
        assert!(glob_match("?pt", "gpt"));
        assert!(glob_match("caf?", "café"));
        assert!(!glob_match("caf?", "cafés"));
        assert!(!glob_match("gpt-4?", "gpt-4"));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!glob_match("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn weighted_pick() {
        let w = [90u32, 10];
        assert_eq!(pick_weighted(w.iter().copied(), 0.0), Some(0));
        assert_eq!(pick_weighted(w.iter().copied(), 0.8999), Some(0));
        assert_eq!(pick_weighted(w.iter().copied(), 0.9), Some(1));
        assert_eq!(pick_weighted(w.iter().copied(), 0.99999), Some(1));
        assert_eq!(pick_weighted(w.iter().copied(), 1.0), Some(1));
        assert_eq!(pick_weighted([0u32, 100, 0].into_iter(), 0.5), Some(1));
        assert_eq!(pick_weighted([0u32, 0].into_iter(), 0.5), Some(0));
        assert_eq!(pick_weighted(std::iter::empty(), 0.5), None);
    }
}
