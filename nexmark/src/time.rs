//! Calendar fields of event times in UTC, formatted as Flink's SQL functions format them.

use crate::model::Millis;

/// `(year, month, day)` of the day `days` after 1970-01-01 (the proleptic Gregorian
/// calendar; Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The parts of an event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Millisecond.
    pub milli: u32,
}

/// Splits `ms` since the epoch into calendar parts (UTC).
pub fn parts(ms: Millis) -> Parts {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil(days);
    Parts {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        milli: (in_day % 1000) as u32,
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, the text of a `TIMESTAMP(3)`.
pub fn timestamp(ms: Millis) -> String {
    let p = parts(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.milli
    )
}

/// `DATE_FORMAT(t, 'yyyy-MM-dd')`.
pub fn date(ms: Millis) -> String {
    let p = parts(ms);
    format!("{:04}-{:02}-{:02}", p.year, p.month, p.day)
}

/// `DATE_FORMAT(t, 'HH:mm')`.
pub fn hour_minute(ms: Millis) -> String {
    let p = parts(ms);
    format!("{:02}:{:02}", p.hour, p.minute)
}

/// The day number (days since 1970-01-01) of an event time: a cheap group key for a date.
pub fn day_number(ms: Millis) -> i64 {
    ms.div_euclid(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(1_767_225_600_000), "2026-01-01 00:00:00.000");
        assert_eq!(
            timestamp(951_782_400_000 + 3_723_004),
            "2000-02-29 01:02:03.004"
        );
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(
            hour_minute(1_767_225_600_000 + 13 * 3_600_000 + 5 * 60_000),
            "13:05"
        );
    }
}
