//! `--timeout` values in Go's duration syntax, as the original pgmi accepts them:
//! `30s`, `5m`, `1h30m`, `1.5h`, `250ms`; a bare `0` means "no deadline".
//!
//! Grammar (Go `time.ParseDuration`): an optional sign, then one or more
//! `<decimal number><unit>` pairs, unit one of `ns us µs μs ms s m h`. A negative duration
//! is rejected here (the original pgmi exits 10 for it), as is anything else that does not
//! parse.

use std::time::Duration;

/// Parse a `--timeout` value. `Ok(None)` means no deadline (`0`, `0s`, ...).
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let nanos = parse_nanos(text)?;
    Ok((nanos > 0).then(|| Duration::from_nanos(nanos)))
}

fn parse_nanos(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("invalid --timeout {text:?}: expected a duration such as 30s, 5m or 1h30m (0 disables the deadline)")
    };
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if negative && total > 0.0 {
        return Err(format!(
            "invalid --timeout {text:?}: the deadline must not be negative (0 disables it)"
        ));
    }
    // Go caps durations at about 292 years; anything that large is "no practical limit".
    if total >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(total.round() as u64)
}

/// `1.234s` → `"1.23s"`: the two-decimal seconds the summary line and notices print.
pub fn seconds_2dp(elapsed: Duration) -> String {
    format!("{:.2}s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<f64> {
        parse_timeout(text).unwrap().map(|d| d.as_secs_f64())
    }

    #[test]
    fn accepts_go_durations() {
        assert_eq!(secs("30s"), Some(30.0));
        assert_eq!(secs("5m"), Some(300.0));
        assert_eq!(secs("3m"), Some(180.0));
        assert_eq!(secs("1h30m"), Some(5400.0));
        assert_eq!(secs("1.5h"), Some(5400.0));
        assert_eq!(secs("250ms"), Some(0.25));
        assert_eq!(secs("2m3.5s"), Some(123.5));
        assert_eq!(secs("+10s"), Some(10.0));
        assert_eq!(secs("1500us"), Some(0.0015));
        assert_eq!(secs("1µs"), Some(0.000001));
    }

    #[test]
    fn zero_disables_the_deadline() {
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout("0s").unwrap(), None);
        assert_eq!(parse_timeout("-0").unwrap(), None);
    }

    #[test]
    fn rejects_negative_and_garbage() {
        for bad in [
            "-5s", "-1h", "", "5", "abc", "5 s", "s", "1.2.3s", "5d", "1h-5m", ".s", "10S",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_timeout("-5s").unwrap_err().contains("negative"));
    }

    #[test]
    fn two_decimal_seconds() {
        assert_eq!(seconds_2dp(Duration::from_millis(1234)), "1.23s");
        assert_eq!(seconds_2dp(Duration::ZERO), "0.00s");
    }
}
