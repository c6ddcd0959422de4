//! Hedging: a first attempt that has no token after the hedge delay gets a second one
//! beside it, and the first to produce a token wins. Generic over the attempts, so the race
//! is unit tested with plain futures, no sockets.

use std::future::Future;
use std::time::{Duration, Instant};

/// How a hedged first attempt ended.
#[derive(Debug)]
pub enum Race<T, E> {
    /// The first attempt finished (opened or failed) before the hedge delay: no hedge sent.
    Unhedged(Result<T, E>),
    /// The hedge was sent.
    Hedged(HedgeEnd<T, E>),
}

/// The end of a race in which the hedge was sent: attempt 0 is the first candidate's,
/// attempt 1 the hedge's.
#[derive(Debug)]
pub struct HedgeEnd<T, E> {
    /// The attempts that failed, in the order they did.
    pub failures: Vec<(usize, E)>,
    /// The attempt that produced a token first, if any.
    pub won: Option<Won<T>>,
}

/// The winner of a race. The other attempt was cancelled (its future dropped, which closes
/// its connection) after waiting `loser_waited`, unless it had failed already.
#[derive(Debug)]
pub struct Won<T> {
    pub winner: usize,
    pub opened: T,
    pub loser_waited: Option<Duration>,
}

/// Runs `first`; when it has not finished after `delay`, starts the hedge (only then:
/// `start_hedge` may be costly) and runs both. The first to succeed wins; a failure leaves
/// the other running.
pub async fn race<T, E, F, H>(
    first: F,
    start_hedge: impl FnOnce() -> H,
    delay: Duration,
) -> Race<T, E>
where
    F: Future<Output = Result<T, E>>,
    H: Future<Output = Result<T, E>>,
{
    tokio::pin!(first);
    tokio::select! {
        r = &mut first => return Race::Unhedged(r),
        () = tokio::time::sleep(delay) => {}
    }
    let hedge_started = Instant::now();
    let started = hedge_started - delay;
    let mut failures = Vec::new();
    let hedge = start_hedge();
    tokio::pin!(hedge);
    let (mut first_done, mut hedge_done) = (false, false);
    let won = loop {
        if first_done && hedge_done {
            break None;
        }
        tokio::select! {
            r = &mut first, if !first_done => match r {
                Ok(opened) => {
                    let loser_waited = (!hedge_done).then(|| hedge_started.elapsed());
                    break Some(Won { winner: 0, opened, loser_waited });
                }
                Err(f) => {
                    first_done = true;
                    failures.push((0, f));
                }
            },
            r = &mut hedge, if !hedge_done => match r {
                Ok(opened) => {
                    let loser_waited = (!first_done).then(|| started.elapsed());
                    break Some(Won { winner: 1, opened, loser_waited });
                }
                Err(f) => {
                    hedge_done = true;
                    failures.push((1, f));
                }
            },
        }
    };
    Race::Hedged(HedgeEnd { failures, won })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::pending;

    use tokio::sync::oneshot;

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);
    const SHORT: Duration = Duration::from_millis(1);

    type Attempt = Result<&'static str, &'static str>;

    #[tokio::test]
    async fn a_first_attempt_done_before_the_delay_is_never_hedged() {
        let started = Cell::new(false);
        for result in [Ok("first"), Err("refused")] {
            let r: Race<_, _> = race(
                async { result },
                || {
                    started.set(true);
                    pending::<Attempt>()
                },
                LONG,
            )
            .await;
            assert!(matches!(r, Race::Unhedged(x) if x == result));
        }
        assert!(!started.get(), "the hedge was started");
    }

    #[tokio::test]
    async fn the_hedge_wins_when_it_answers_first() {
        let r = race(pending::<Attempt>(), || async { Ok("hedge") }, SHORT).await;
        let Race::Hedged(end) = r else {
            panic!("not hedged")
        };
        let won = end.won.expect("a winner");
        assert_eq!((won.winner, won.opened), (1, "hedge"));
        assert!(
            won.loser_waited.is_some(),
            "the first attempt was cancelled"
        );
        assert!(end.failures.is_empty());
    }

    #[tokio::test]
    async fn a_failed_hedge_leaves_the_first_attempt_to_win() {
        let (release, released) = oneshot::channel::<()>();
        let first = async move {
            let _ = released.await;
            Ok("first")
        };
        let hedge = move || async move {
            let _ = release.send(());
            Err("hedge failed")
        };
        let Race::Hedged(end) = race(first, hedge, SHORT).await else {
            panic!("not hedged")
        };
        let won = end.won.expect("a winner");
        assert_eq!((won.winner, won.opened), (0, "first"));
        assert_eq!(
            won.loser_waited, None,
            "the loser had failed, not been cancelled"
        );
        assert_eq!(end.failures, vec![(1, "hedge failed")]);
    }

    #[tokio::test]
    async fn the_first_attempt_can_still_win_after_the_hedge_is_sent() {
        let (release, released) = oneshot::channel::<()>();
        let first = async move {
            let _ = released.await;
            Ok("first")
        };
        let hedge = move || async move {
            let _ = release.send(());
            pending::<Attempt>().await
        };
        let Race::Hedged(end) = race(first, hedge, SHORT).await else {
            panic!("not hedged")
        };
        let won = end.won.expect("a winner");
        assert_eq!(won.winner, 0);
        assert!(won.loser_waited.is_some(), "the hedge was cancelled");
    }

    #[tokio::test]
    async fn both_failures_are_reported_in_order() {
        let (release, released) = oneshot::channel::<()>();
        let first = async move {
            let _ = released.await;
            Err::<&str, _>("first failed")
        };
        let hedge = move || async move {
            let _ = release.send(());
            Err("hedge failed")
        };
        let Race::Hedged(end) = race(first, hedge, SHORT).await else {
            panic!("not hedged")
        };
        assert!(end.won.is_none());
        assert_eq!(end.failures, vec![(1, "hedge failed"), (0, "first failed")]);
    }
}
