//! Wall-clock time as Unix seconds or milliseconds: what budgets count windows in, what
//! `created` fields and the admin API's reset times say. (Latency statistics use the
//! monotonic `router::stats::clock_ms` instead.)

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    unix_ms(SystemTime::now()) / 1000
}

/// Unix milliseconds at `t` (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(t), 1_700_000_000_123);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        let now = unix_secs();
        assert!(now > 1_700_000_000, "{now}");
    }
}
