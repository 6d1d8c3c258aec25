//! Time, one place for it: the wall clock in epoch milliseconds, civil (UTC) dates and timestamps,
//! human durations, and the one parser of durations given on the command line.
//!
//! Below every other module: the engine stamps rows with [`now_ms`], the dataset names date
//! partitions with [`utc_date`], the report and the lock print [`iso_utc`], the plan and the report
//! print [`span_text`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

/// How far the audit's clock is ahead of the wall clock (`run --as-of`, against a simulator only).
static AS_OF_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Wall-clock epoch milliseconds: lock times and leases, part names, a metric's time of success.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The audit's clock in epoch milliseconds (the `fetched_at` column, listing times, the `date=`
/// partition): the wall clock, or, after [`set_as_of`], the time the run was told it is.
pub fn now_ms() -> i64 {
    wall_ms() + AS_OF_OFFSET_MS.load(Ordering::Relaxed)
}

/// Makes the audit's clock read `epoch_ms` now and run on from there (`run --as-of`, set once at
/// the binary's edge before the run: a simulator's fleet is "now" at its `--now`, not the machine's).
pub(crate) fn set_as_of(epoch_ms: i64) {
    AS_OF_OFFSET_MS.store(epoch_ms - wall_ms(), Ordering::Relaxed);
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` of epoch milliseconds, UTC (the proleptic Gregorian calendar).
pub fn utc_date(epoch_ms: i64) -> String {
    let (y, m, d) = civil_from_days(epoch_ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whether `s` is a real calendar date written `YYYY-MM-DD` (a `date=` partition, a manifest's
/// `date`): ten characters, digits and two dashes, a month of 1 to 12 and a day of that month.
pub(crate) fn is_valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse::<u32>().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `2025-11-29T07:06:40Z` (or `...40.123Z` with `millis`), UTC, from epoch milliseconds.
pub(crate) fn iso_utc(ms: i64, millis: bool) -> String {
    let in_day = ms.rem_euclid(DAY_MS);
    let (h, min, s, frac) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let date = utc_date(ms);
    if millis {
        format!("{date}T{h:02}:{min:02}:{s:02}.{frac:03}Z")
    } else {
        format!("{date}T{h:02}:{min:02}:{s:02}Z")
    }
}

/// A span of whole seconds in its two largest units: `12s`, `4m 10s`, `3h 20m`, `1d 3h`.
pub(crate) fn span_text(secs: u64) -> String {
    let s = secs;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// An estimate in seconds as [`span_text`], rounded: `3h 20m`, `4m 10s`, `12s`.
pub(crate) fn human_duration(secs: f64) -> String {
    span_text(secs.max(0.0).round() as u64)
}

/// Parses a duration such as `500ms`, `10s`, `2m`, `24h` (a plain number is seconds), and `14d` when
/// `days` allows the unit; it must be positive and at most `max` (`limit` says so in the message).
/// A report threshold (`--queued-after` and the others, `run --queued-after` too): a span of at
/// most 366 days.
pub(crate) fn parse_threshold(s: &str) -> Result<Duration, String> {
    parse_span(s, true, Duration::from_secs(366 * 86_400), "at most 366d")
}

pub(crate) fn parse_span(
    s: &str,
    days: bool,
    max: Duration,
    limit: &str,
) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (s[..i].trim(), &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 10s, 90m or 24h"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        "d" if days => v * 86_400.0,
        _ => {
            let units = if days {
                "ms, s, m, h or d"
            } else {
                "ms, s, m or h"
            };
            return Err(format!("`{s}`: unknown unit `{unit}` (use {units})"));
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= max.as_secs_f64()) {
        return Err(format!("`{s}` must be positive and {limit}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_calendar_dates_are_dates() {
        for ok in ["2026-12-05", "2024-02-29", "2000-02-29", "1970-01-01"] {
            assert!(is_valid_date(ok), "{ok}");
        }
        for bad in [
            "..",
            "../../../x",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-1-01",
            "2026-12-5",
            "2026/12/05",
            "+026-12-05",
            "2026-12-05x",
            "",
        ] {
            assert!(!is_valid_date(bad), "{bad}");
        }
    }

    // iso_utc's cases are the report's (report::render), utc_date's the partitions' (dataset).
    #[test]
    fn spans_read_well() {
        assert_eq!(span_text(45), "45s");
        assert_eq!(human_duration(-3.0), "0s");
        assert_eq!(human_duration(59.6), "1m 0s");
    }

    #[test]
    fn one_parser_two_policies() {
        let week = Duration::from_secs(7 * 86_400 - 1);
        assert_eq!(
            parse_span("90m", false, week, "under a week"),
            Ok(Duration::from_secs(5_400))
        );
        assert!(parse_span("5d", false, week, "under a week")
            .unwrap_err()
            .contains("unknown unit `d`"));
        assert_eq!(
            parse_span(
                "14d",
                true,
                Duration::from_secs(366 * 86_400),
                "at most 366d"
            ),
            Ok(Duration::from_secs(14 * 86_400))
        );
        assert!(parse_span("0s", true, week, "x").is_err());
    }
}
