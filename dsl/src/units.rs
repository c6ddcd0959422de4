//! Typed literals: durations, counts, money, percentages and percentiles, resolved exactly.
//!
//! The parser keeps a number as the text the user wrote (`1.5`, unit `h`), so that this module
//! can convert it with decimal arithmetic (no floating point: `0.1h` is exactly 360,000 ms) and
//! say precisely which units were expected when the wrong kind is used. The same rules back
//! [`parse_duration_ms`], which the CRD crate uses for `LLMProvider` timeout fields.

use crate::ast::Quantity;

/// Which kind of literal a position in the language expects; decides the accepted units and
/// the wording of the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expected {
    /// `ms`, `s`, `m`, `h`, `d` → milliseconds.
    Duration,
    /// No unit, `k` or `M` → a whole number.
    Count,
    /// `$` prefix → micro-USD.
    Money,
    /// `%` → basis points, at most 100%.
    Percent,
    /// `p50`, `p99.9` → hundredths of a percent, strictly between 0 and 100.
    Percentile,
    /// A plain whole number with no unit (status codes).
    Integer,
}

impl Expected {
    /// How the error message names what was expected, with examples.
    pub fn description(self) -> &'static str {
        match self {
            Self::Duration => "a duration like `500ms`, `2s` or `1m`",
            Self::Count => "a count like `600`, `4k` or `2M`",
            Self::Money => "an amount of money like `$500` or `$0.25`",
            Self::Percent => "a percentage like `5%` or `99.5%`",
            Self::Percentile => "a percentile like `p50`, `p95` or `p99.9`",
            Self::Integer => "a whole number like `429`",
        }
    }

    /// The help line listing the accepted units.
    pub fn units_help(self) -> &'static str {
        match self {
            Self::Duration => {
                "durations take a unit: `ms`, `s`, `m` (minutes), `h` or `d`, e.g. `250ms` or `1.5h`"
            }
            Self::Count => {
                "counts are plain numbers or take `k` (×1,000) or `M` (×1,000,000), e.g. `4k`"
            }
            Self::Money => "money is written in dollars with a `$` prefix, e.g. `$500` or `$0.25`",
            Self::Percent => "percentages end in `%` and are between `0%` and `100%`, e.g. `5%`",
            Self::Percentile => {
                "write `p` and a number between 0 and 100, e.g. `p50`, `p95` or `p99.9`"
            }
            Self::Integer => "write the number without a unit or fraction",
        }
    }
}

/// Why a literal could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The literal has the wrong unit (or none) for its position.
    #[error("expected {}, found `{found}`", expected.description())]
    WrongKind { expected: Expected, found: String },
    /// The number itself is malformed (`1.2.3`, `.5`, empty).
    #[error("`{found}` is not a valid number")]
    BadNumber { expected: Expected, found: String },
    /// The value does not resolve to a whole number of the internal unit (`1.5ms`, `0.5`).
    #[error("`{found}` is too precise: {why}")]
    Fraction {
        expected: Expected,
        found: String,
        why: &'static str,
    },
    /// The value is outside the range the position allows.
    #[error("`{found}` is out of range: {why}")]
    OutOfRange {
        expected: Expected,
        found: String,
        why: &'static str,
    },
}

impl UnitError {
    /// What the position expected; chooses the help line.
    pub fn expected(&self) -> Expected {
        match self {
            Self::WrongKind { expected, .. }
            | Self::BadNumber { expected, .. }
            | Self::Fraction { expected, .. }
            | Self::OutOfRange { expected, .. } => *expected,
        }
    }

    /// The help line for a diagnostic about this error.
    pub fn help(&self) -> String {
        self.expected().units_help().to_string()
    }
}

/// `Result` alias for this module.
pub type Result<T> = std::result::Result<T, UnitError>;

/// The text of a quantity as the user wrote it (`$0.50`, `100ms`).
pub fn written(q: &Quantity) -> String {
    if q.unit == "$" {
        format!("${}", q.value)
    } else {
        format!("{}{}", q.value, q.unit)
    }
}

/// A decimal number held exactly: `digits / 10^scale`.
#[derive(Clone, Copy, Debug)]
struct Decimal {
    digits: u128,
    scale: u32,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (text, ""),
        };
        if int.is_empty() || text.ends_with('.') {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac = frac.trim_end_matches('0');
        if int.len() + frac.len() > 30 {
            return None;
        }
        let mut digits: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            digits = digits.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        }
        Some(Decimal {
            digits,
            scale: frac.len() as u32,
        })
    }

    /// `self × factor` if that is a whole number.
    fn times(self, factor: u64) -> Option<u128> {
        let product = self.digits.checked_mul(u128::from(factor))?;
        let divisor = 10u128.checked_pow(self.scale)?;
        (product % divisor == 0).then_some(product / divisor)
    }
}

fn number(q: &Quantity, expected: Expected) -> Result<Decimal> {
    Decimal::parse(&q.value).ok_or_else(|| UnitError::BadNumber {
        expected,
        found: written(q),
    })
}

fn scaled(q: &Quantity, expected: Expected, factor: u64, why: &'static str) -> Result<u128> {
    number(q, expected)?
        .times(factor)
        .ok_or_else(|| UnitError::Fraction {
            expected,
            found: written(q),
            why,
        })
}

fn fit_u64(v: u128, q: &Quantity, expected: Expected) -> Result<u64> {
    u64::try_from(v).map_err(|_| UnitError::OutOfRange {
        expected,
        found: written(q),
        why: "the number is too large",
    })
}

/// Milliseconds per unit, or `None` for a unit that is not a duration.
fn duration_factor(unit: &str) -> Option<u64> {
    Some(match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    })
}

/// A duration in milliseconds: `250ms`, `2s`, `1.5h`.
pub fn duration_ms(q: &Quantity) -> Result<u64> {
    let expected = Expected::Duration;
    let factor = duration_factor(&q.unit).ok_or_else(|| UnitError::WrongKind {
        expected,
        found: written(q),
    })?;
    let v = scaled(
        q,
        expected,
        factor,
        "durations resolve to whole milliseconds",
    )?;
    fit_u64(v, q, expected)
}

/// A count: `600`, `4k`, `1.5M`.
pub fn count(q: &Quantity) -> Result<u64> {
    let expected = Expected::Count;
    let factor = match q.unit.as_str() {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        _ => {
            return Err(UnitError::WrongKind {
                expected,
                found: written(q),
            });
        }
    };
    let v = scaled(q, expected, factor, "a count must be a whole number")?;
    fit_u64(v, q, expected)
}

/// Money in micro-USD: `$500` → 500,000,000.
pub fn money_micro_usd(q: &Quantity) -> Result<u64> {
    let expected = Expected::Money;
    if q.unit != "$" {
        return Err(UnitError::WrongKind {
            expected,
            found: written(q),
        });
    }
    let v = scaled(
        q,
        expected,
        1_000_000,
        "money resolves to whole millionths of a dollar",
    )?;
    fit_u64(v, q, expected)
}

/// A percentage in basis points (1% = 100), at most 100%.
pub fn percent_bp(q: &Quantity) -> Result<u32> {
    let expected = Expected::Percent;
    if q.unit != "%" {
        return Err(UnitError::WrongKind {
            expected,
            found: written(q),
        });
    }
    let v = scaled(
        q,
        expected,
        100,
        "percentages resolve to hundredths of a percent",
    )?;
    if v > 10_000 {
        return Err(UnitError::OutOfRange {
            expected,
            found: written(q),
            why: "more than 100%",
        });
    }
    Ok(v as u32)
}

/// A plain whole number without unit (status codes).
pub fn integer(q: &Quantity) -> Result<u64> {
    let expected = Expected::Integer;
    if !q.unit.is_empty() {
        return Err(UnitError::WrongKind {
            expected,
            found: written(q),
        });
    }
    let v = scaled(q, expected, 1, "a whole number has no fraction")?;
    fit_u64(v, q, expected)
}

/// A percentile word in hundredths of a percent: `p95` → 9500, `p99.9` → 9990.
pub fn percentile_centi(word: &str) -> Result<u32> {
    let expected = Expected::Percentile;
    let found = || word.to_string();
    let Some(rest) = word.strip_prefix('p') else {
        return Err(UnitError::WrongKind {
            expected,
            found: found(),
        });
    };
    let d = Decimal::parse(rest).ok_or_else(|| UnitError::WrongKind {
        expected,
        found: found(),
    })?;
    let v = d.times(100).ok_or(UnitError::Fraction {
        expected,
        found: found(),
        why: "percentiles resolve to hundredths",
    })?;
    if v == 0 || v >= 10_000 {
        return Err(UnitError::OutOfRange {
            expected,
            found: found(),
            why: "a percentile is strictly between 0 and 100",
        });
    }
    Ok(v as u32)
}

/// Parses a duration written as text, e.g. `"30s"` or `"250ms"`, for `LLMProvider` fields.
/// Surrounding whitespace is ignored; the number and unit must touch.
pub fn parse_duration_ms(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (value, unit) = text.split_at(split);
    let q = Quantity {
        value: value.to_string(),
        unit: unit.to_string(),
        span: Default::default(),
    };
    if value.is_empty() {
        return Err(UnitError::WrongKind {
            expected: Expected::Duration,
            found: text.to_string(),
        });
    }
    duration_ms(&q)
}

/// Prints milliseconds back in the largest unit that keeps it whole (`120000` → `2m`), for
/// `explain` and messages.
pub fn format_duration_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (factor, unit) in UNITS {
        if ms >= factor && ms.is_multiple_of(factor) {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

/// Prints basis points as a percentage (`9950` → `99.5%`).
pub fn format_bp(bp: u32) -> String {
    format_hundredths(u64::from(bp)) + "%"
}

/// Prints hundredths as a decimal without trailing zeros (`9990` → `99.9`).
pub fn format_hundredths(v: u64) -> String {
    let (whole, frac) = (v / 100, v % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// Prints micro-USD as dollars (`500000000` → `$500`, `250000` → `$0.25`).
pub fn format_micro_usd(v: u64) -> String {
    let (whole, frac) = (v / 1_000_000, v % 1_000_000);
    if frac == 0 {
        return format!("${whole}");
    }
    let frac = format!("{frac:06}");
    format!("${whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn q(value: &str, unit: &str) -> Quantity {
        Quantity {
            value: value.into(),
            unit: unit.into(),
            span: Default::default(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&q("250", "ms")), Ok(250));
        assert_eq!(duration_ms(&q("2", "s")), Ok(2_000));
        assert_eq!(duration_ms(&q("1", "m")), Ok(60_000));
        assert_eq!(duration_ms(&q("1.5", "h")), Ok(5_400_000));
        assert_eq!(duration_ms(&q("0.1", "h")), Ok(360_000));
        assert_eq!(duration_ms(&q("1", "d")), Ok(86_400_000));
        let e = duration_ms(&q("5", "")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a duration like `500ms`, `2s` or `1m`, found `5`"
        );
        assert!(e.help().contains("`ms`"));
        assert!(matches!(
            duration_ms(&q("1.5", "ms")),
            Err(UnitError::Fraction { .. })
        ));
        assert!(matches!(
            duration_ms(&q("1.2.3", "s")),
            Err(UnitError::BadNumber { .. })
        ));
        assert!(matches!(
            duration_ms(&q("99999999999999999999", "d")),
            Err(UnitError::OutOfRange { .. })
        ));
    }

    #[test]
    fn counts_money_percent() {
        assert_eq!(count(&q("600", "")), Ok(600));
        assert_eq!(count(&q("4", "k")), Ok(4_000));
        assert_eq!(count(&q("1.5", "M")), Ok(1_500_000));
        assert!(matches!(
            count(&q("0.5", "")),
            Err(UnitError::Fraction { .. })
        ));
        assert!(matches!(
            count(&q("5", "s")),
            Err(UnitError::WrongKind { .. })
        ));
        assert_eq!(money_micro_usd(&q("500", "$")), Ok(500_000_000));
        assert_eq!(money_micro_usd(&q("0.25", "$")), Ok(250_000));
        assert!(matches!(
            money_micro_usd(&q("500", "")),
            Err(UnitError::WrongKind { .. })
        ));
        assert_eq!(percent_bp(&q("5", "%")), Ok(500));
        assert_eq!(percent_bp(&q("99.5", "%")), Ok(9_950));
        assert_eq!(percent_bp(&q("100", "%")), Ok(10_000));
        assert!(matches!(
            percent_bp(&q("101", "%")),
            Err(UnitError::OutOfRange { .. })
        ));
        assert_eq!(integer(&q("429", "")), Ok(429));
        assert!(integer(&q("4.5", "")).is_err());
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile_centi("p95"), Ok(9_500));
        assert_eq!(percentile_centi("p99.9"), Ok(9_990));
        assert_eq!(percentile_centi("p50"), Ok(5_000));
        assert!(percentile_centi("p0").is_err());
        assert!(percentile_centi("p100").is_err());
        assert!(percentile_centi("q95").is_err());
        assert!(percentile_centi("p").is_err());
    }

    #[test]
    fn duration_strings() {
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms(" 250ms "), Ok(250));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert!(parse_duration_ms("30").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("3 s").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration_ms(120_000), "2m");
        assert_eq!(format_duration_ms(1_500), "1500ms");
        assert_eq!(format_bp(9_950), "99.5%");
        assert_eq!(format_bp(500), "5%");
        assert_eq!(format_hundredths(9_990), "99.9");
        assert_eq!(format_micro_usd(250_000), "$0.25");
        assert_eq!(format_micro_usd(500_000_000), "$500");
    }
}
