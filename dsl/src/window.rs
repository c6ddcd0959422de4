//! Budget windows aligned to the UTC calendar, so that every replica agrees on when a window
//! starts and ends: seconds, minutes, hours and days on their boundaries, months on the 1st.
//! Here, beside the IR's `Window`, because the proxy's budgets and `switchyard simulate` must
//! agree to the second.

use crate::ir::Window;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds of the start of the window containing `now`.
pub fn start(window: Window, now: u64) -> u64 {
    match window {
        Window::Second => now,
        Window::Minute => now - now % 60,
        Window::Hour => now - now % 3600,
        Window::Day => now - now % 86_400,
        Window::Month => {
            let (y, m, _) = civil_from_days((now / 86_400) as i64);
            (days_from_civil(y, m, 1) * 86_400) as u64
        }
    }
}

/// Unix seconds of the end (exclusive) of the window containing `now`: when it resets.
pub fn end(window: Window, now: u64) -> u64 {
    match window {
        Window::Second => now + 1,
        Window::Minute => start(window, now) + 60,
        Window::Hour => start(window, now) + 3600,
        Window::Day => start(window, now) + 86_400,
        Window::Month => {
            let (y, m, _) = civil_from_days((now / 86_400) as i64);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(y, m, 1) * 86_400) as u64
        }
    }
}

/// Short name used in store keys and the admin view.
pub fn name(window: Window) -> &'static str {
    match window {
        Window::Second => "second",
        Window::Minute => "minute",
        Window::Hour => "hour",
        Window::Day => "day",
        Window::Month => "month",
    }
}

/// RFC 3339 rendering of unix seconds (UTC).
pub fn rfc3339(t: u64) -> String {
    let (y, m, d) = civil_from_days((t / 86_400) as i64);
    let s = t % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T02:30:00Z.
    const NOW: u64 = 1_795_314_600;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000, -1, 0, 59, 60, 365, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn windows_align_to_the_calendar() {
        assert_eq!(start(Window::Second, NOW + 7), NOW + 7);
        assert_eq!(end(Window::Second, NOW + 7), NOW + 8);
        assert_eq!(start(Window::Minute, NOW + 59), NOW);
        assert_eq!(end(Window::Minute, NOW + 59), NOW + 60);
        assert_eq!(start(Window::Hour, NOW), NOW - 1800);
        assert_eq!(end(Window::Hour, NOW), NOW + 1800);
        assert_eq!(rfc3339(start(Window::Day, NOW)), "2026-11-22T00:00:00Z");
        assert_eq!(rfc3339(end(Window::Day, NOW)), "2026-11-23T00:00:00Z");
        assert_eq!(rfc3339(start(Window::Month, NOW)), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(end(Window::Month, NOW)), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn months_roll_over_years_and_leap_days() {
        let dec = (days_from_civil(2026, 12, 31) * 86_400 + 86_399) as u64;
        assert_eq!(rfc3339(start(Window::Month, dec)), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(end(Window::Month, dec)), "2027-01-01T00:00:00Z");
        let feb = (days_from_civil(2028, 2, 29) * 86_400) as u64;
        assert_eq!(rfc3339(end(Window::Month, feb)), "2028-03-01T00:00:00Z");
        // The last second of a window belongs to it; the next second starts the next one.
        let jan = (days_from_civil(2027, 1, 1) * 86_400) as u64;
        assert_eq!(end(Window::Month, jan - 1), jan);
        assert_eq!(start(Window::Month, jan), jan);
    }

    #[test]
    fn a_window_ends_where_the_next_starts() {
        // 2026-12-02T10:11:12Z
        let t = 1_796_206_272;
        assert_eq!(start(Window::Minute, t), t - 12);
        assert_eq!(start(Window::Day, t), t - (10 * 3600 + 11 * 60 + 12));
        // 2026-12-01T00:00:00Z, and 2027-01-01T00:00:00Z
        assert_eq!(start(Window::Month, t), 1_796_083_200);
        assert_eq!(
            end(Window::Month, 1_796_083_200),
            1_796_083_200 + 31 * 86_400
        );
    }
}
