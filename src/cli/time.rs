//! Times on the command line: RFC 3339 (`2026-12-01T09:00:00Z`), a
//! duration from now (`+2h`) or unix seconds (`@1796115600`).

use std::time::{Duration, UNIX_EPOCH};

use super::publish::parse_duration;

/// Parses a time into unix seconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some(d) = s.strip_prefix('+') {
        return Ok(ferry_protocol::unix_now().saturating_add(parse_duration(d)?));
    }
    if let Some(u) = s.strip_prefix('@') {
        return u
            .parse()
            .map_err(|_| format!("{s:?}: expected @ and unix seconds"));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{s:?} is not a time ({e}); use e.g. 2026-12-01T09:00:00Z, +2h or @1796115600")
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{s:?} is before 1970"))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn format_time(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.min(253_402_300_799));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forms() {
        assert_eq!(parse_time("2026-12-01T09:00:00Z"), Ok(1_796_115_600));
        assert_eq!(format_time(1_796_115_600), "2026-12-01T09:00:00Z");
        assert_eq!(parse_time("@42"), Ok(42));
        let soon = parse_time("+1h").unwrap();
        assert!(soon >= ferry_protocol::unix_now() + 3599);
        assert!(parse_time("tomorrow").is_err());
        assert_eq!(format_time(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
