//! Calendar arithmetic for the date and time conversions (pure Rust, no Python): civil dates
//! from and to days since the Unix epoch, and Arrow time units from and to microseconds,
//! the resolution of Python's `datetime`.

use datafusion::arrow::datatypes::TimeUnit;

/// Microseconds in a day.
pub(super) const DAY_US: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A value in `unit` as whole microseconds, rounding sub-microsecond parts toward negative
/// infinity (Python's datetime objects stop at microseconds). `None` on overflow.
pub(super) fn to_micros(value: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => value.checked_mul(1_000_000),
        TimeUnit::Millisecond => value.checked_mul(1_000),
        TimeUnit::Microsecond => Some(value),
        TimeUnit::Nanosecond => Some(value.div_euclid(1_000)),
    }
}

/// Microseconds as a value in `unit`, truncating toward zero what `unit` cannot hold (as
/// pyarrow does). `None` on overflow.
pub(super) fn from_micros(micros: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(micros / 1_000_000),
        TimeUnit::Millisecond => Some(micros / 1_000),
        TimeUnit::Microsecond => Some(micros),
        TimeUnit::Nanosecond => micros.checked_mul(1_000),
    }
}

/// Microseconds as a value in `unit`, rounding toward negative infinity (for instants, so
/// that dropping sub-second digits keeps the same second). `None` on overflow.
pub(super) fn floor_micros(micros: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(micros.div_euclid(1_000_000)),
        TimeUnit::Millisecond => Some(micros.div_euclid(1_000)),
        TimeUnit::Microsecond => Some(micros),
        TimeUnit::Nanosecond => micros.checked_mul(1_000),
    }
}

/// Splits microseconds into `(days, microseconds within the day)`, the day part floored.
pub(super) fn split_day(micros: i64) -> (i64, i64) {
    (micros.div_euclid(DAY_US), micros.rem_euclid(DAY_US))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..3_000_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn units() {
        assert_eq!(to_micros(-1, TimeUnit::Nanosecond), Some(-1));
        assert_eq!(from_micros(-1_500_000, TimeUnit::Second), Some(-1));
        assert_eq!(floor_micros(-1_500_000, TimeUnit::Second), Some(-2));
        assert_eq!(from_micros(i64::MAX, TimeUnit::Nanosecond), None);
        assert_eq!(split_day(-1), (-1, DAY_US - 1));
    }
}
