//! Counter stores: the pure reserve rule both stores implement, and the in-memory store.
//!
//! A counter holds `settled usage + outstanding reservations` for one budget limit, scope
//! value and window. Reserving checks every checked counter first and then adds to all of
//! them, or to none: `used < limit` admits (there is something left), `used >= limit` is
//! exhausted. Settling adds `actual - reserved`.

use std::collections::HashMap;
use std::sync::Mutex;

/// One counter touched by a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterOp {
    pub key: String,
    pub amount: i64,
    /// `None`: counted but never refused (budgets that downgrade instead of rejecting).
    pub limit: Option<i64>,
    /// Unix seconds after which the counter may be forgotten (its window's end plus slack).
    pub expire_at: u64,
}

/// What a reservation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Added; the values each counter had before.
    Admitted(Vec<i64>),
    /// Nothing added: counter `index` had reached its limit (with `value`).
    Exhausted { index: usize, value: i64 },
}

/// The rule, over the counters' current values (which it updates on admission).
pub fn reserve_in(values: &mut [i64], ops: &[CounterOp]) -> Reserved {
    for (i, (v, op)) in values.iter().zip(ops).enumerate() {
        if op.limit.is_some_and(|l| *v >= l) {
            return Reserved::Exhausted {
                index: i,
                value: *v,
            };
        }
    }
    let before = values.to_vec();
    for (v, op) in values.iter_mut().zip(ops) {
        *v += op.amount;
    }
    Reserved::Admitted(before)
}

/// Counters of one process, forgotten after their window (checked lazily).
#[derive(Debug, Default)]
pub struct MemoryStore {
    counters: Mutex<HashMap<String, (i64, u64)>>,
}

impl MemoryStore {
    pub fn reserve(&self, ops: &[CounterOp], now: u64) -> Reserved {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, exp)| *exp > now);
        }
        let mut values: Vec<i64> = ops
            .iter()
            .map(|op| match map.get(&op.key) {
                Some((v, exp)) if *exp > now => *v,
                _ => 0,
            })
            .collect();
        let r = reserve_in(&mut values, ops);
        if matches!(r, Reserved::Admitted(_)) {
            for (op, v) in ops.iter().zip(values) {
                map.insert(op.key.clone(), (v, op.expire_at));
            }
        }
        r
    }

    /// Adds `delta` to each counter.
    pub fn adjust(&self, deltas: &[(String, i64, u64)], now: u64) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for (key, delta, expire_at) in deltas {
            let e = map.entry(key.clone()).or_insert((0, *expire_at));
            if e.1 <= now {
                *e = (0, *expire_at);
            }
            e.0 += delta;
        }
    }

    pub fn get(&self, keys: &[String], now: u64) -> Vec<i64> {
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|k| match map.get(k) {
                Some((v, exp)) if *exp > now => *v,
                _ => 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, amount: i64, limit: Option<i64>) -> CounterOp {
        CounterOp {
            key: key.into(),
            amount,
            limit,
            expire_at: 100,
        }
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let s = MemoryStore::default();
        let ops = [op("a", 40, Some(100)), op("b", 1, Some(2))];
        assert_eq!(s.reserve(&ops, 0), Reserved::Admitted(vec![0, 0]));
        assert_eq!(s.reserve(&ops, 0), Reserved::Admitted(vec![40, 1]));
        // `b` is at its limit: nothing is added to `a` either.
        assert_eq!(
            s.reserve(&ops, 0),
            Reserved::Exhausted { index: 1, value: 2 }
        );
        assert_eq!(s.get(&["a".into(), "b".into()], 0), vec![80, 2]);
    }

    #[test]
    fn settle_moves_reservations_to_actual_and_windows_expire() {
        let s = MemoryStore::default();
        let ops = [op("t", 500, Some(1000))];
        s.reserve(&ops, 0);
        s.reserve(&ops, 0);
        // At the limit: refused, although the real usage may be far lower.
        assert!(matches!(s.reserve(&ops, 0), Reserved::Exhausted { .. }));
        // One request settles to 120 actual tokens: 380 come back.
        s.adjust(&[("t".into(), 120 - 500, 100)], 0);
        assert_eq!(s.get(&["t".into()], 0), vec![620]);
        assert!(matches!(s.reserve(&ops, 0), Reserved::Admitted(_)));
        // Past the window's end the counter starts from zero.
        assert_eq!(s.get(&["t".into()], 100), vec![0]);
        assert_eq!(s.reserve(&ops, 100), Reserved::Admitted(vec![0]));
    }

    #[test]
    fn unchecked_counters_count_but_never_refuse() {
        let mut values = vec![10, 5];
        let ops = [op("x", 3, None), op("y", 1, Some(6))];
        assert_eq!(
            reserve_in(&mut values, &ops),
            Reserved::Admitted(vec![10, 5])
        );
        assert_eq!(values, vec![13, 6]);
        assert!(matches!(
            reserve_in(&mut values, &ops),
            Reserved::Exhausted { index: 1, .. }
        ));
    }

    /// The bound, by brute force: sequential admissions with any mix of amounts and any
    /// settlements at or below the reservation never take settled usage past
    /// `limit + max reservation - 1`, i.e. past the limit by more than the reservation in
    /// flight when it was reached.
    #[test]
    fn overspend_bound_holds_for_random_schedules() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let limit = rng.i64(1..5_000);
            let mut value = 0i64;
            let mut in_flight: Vec<(i64, i64)> = Vec::new();
            let mut settled = 0i64;
            let mut max_res = 0i64;
            for _ in 0..200 {
                if rng.bool() || in_flight.is_empty() {
                    let amount = rng.i64(1..800);
                    let ops = [op("k", amount, Some(limit))];
                    if let Reserved::Admitted(_) =
                        reserve_in(std::slice::from_mut(&mut value), &ops)
                    {
                        let actual = rng.i64(0..=amount);
                        in_flight.push((amount, actual));
                        max_res = max_res.max(amount);
                    }
                } else {
                    let (amount, actual) = in_flight.swap_remove(rng.usize(..in_flight.len()));
                    value += actual - amount;
                    settled += actual;
                }
            }
            let total = settled + in_flight.iter().map(|(_, a)| a).sum::<i64>();
            assert!(total < limit + max_res, "{total} vs {limit} + {max_res}");
        }
    }
}
