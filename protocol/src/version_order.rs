//! The order of version strings, for "newer than", `--min-version` and
//! "never move a client backwards unless the record is a revert".
//!
//! Versions are compared the way people read them, close to SemVer without
//! requiring it:
//!
//! 1. Build metadata after the first `+` is ignored for ordering.
//! 2. The release part (before the first `-`) is split at `.` and `_`; the
//!    pieces are compared left to right, each as a run of digits (numerically)
//!    and letters (by bytes), so `1.10 > 1.9` and `2.0a > 2.0`.
//!    A missing piece counts as `0`: `1.2 == 1.2.0`.
//! 3. With equal release parts, a version with a pre-release (`-rc.1`,
//!    `-dev.20240101`) is older than one without; two pre-releases compare
//!    as in 2.
//! 4. Versions that still tie but differ as strings are ordered by their
//!    bytes, so the order is total and `Equal` means the same string.

use std::cmp::Ordering;

/// Compares two version strings (see the module docs).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a_core, _) = split_once_or_all(a, '+');
    let (b_core, _) = split_once_or_all(b, '+');
    let (a_rel, a_pre) = split_pre(a_core);
    let (b_rel, b_pre) = split_pre(b_core);
    compare_dotted(a_rel, b_rel)
        .then_with(|| match (a_pre, b_pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => compare_dotted(x, y),
        })
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// True when `a` is strictly older than `b`.
pub fn is_older(a: &str, b: &str) -> bool {
    compare_versions(a, b) == Ordering::Less
}

fn split_once_or_all(s: &str, c: char) -> (&str, Option<&str>) {
    match s.split_once(c) {
        Some((x, y)) => (x, Some(y)),
        None => (s, None),
    }
}

fn split_pre(s: &str) -> (&str, Option<&str>) {
    split_once_or_all(s, '-')
}

fn compare_dotted(a: &str, b: &str) -> Ordering {
    let mut xs = a.split(['.', '_']);
    let mut ys = b.split(['.', '_']);
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => {
                let o = compare_piece(x.unwrap_or("0"), y.unwrap_or("0"));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Compares runs of digits numerically and other runs by bytes.
fn compare_piece(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ra, rest_a) = run(a);
        let (rb, rest_b) = run(b);
        let o = match (ra[0].is_ascii_digit(), rb[0].is_ascii_digit()) {
            (true, true) => compare_numeric(ra, rb),
            // Digits sort before letters: 1.0.1 < 1.0.a is arbitrary but
            // total; numbers are what releases use.
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => ra.cmp(rb),
        };
        if o != Ordering::Equal {
            return o;
        }
        a = rest_a;
        b = rest_b;
    }
}

/// The leading run of digits or of non-digits.
fn run(s: &[u8]) -> (&[u8], &[u8]) {
    let digit = s[0].is_ascii_digit();
    let n = s
        .iter()
        .position(|c| c.is_ascii_digit() != digit)
        .unwrap_or(s.len());
    s.split_at(n)
}

/// Numeric comparison of digit runs of any length (no overflow).
fn compare_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_like_people_do() {
        let ascending = [
            "0.9",
            "1.0.0-alpha",
            "1.0.0-alpha.2",
            "1.0.0-alpha.10",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2",
            "1.9.0",
            "1.10.0",
            "2.0.0-dev.20240101",
            "2.0.0-dev.20240102",
            "2.0.0",
            "2.0a",
            "10",
        ];
        for w in ascending.windows(2) {
            assert_eq!(compare_versions(w[0], w[1]), Ordering::Less, "{w:?}");
            assert_eq!(compare_versions(w[1], w[0]), Ordering::Greater, "{w:?}");
        }
    }

    #[test]
    fn equal_only_when_identical() {
        assert_eq!(compare_versions("1.2.0", "1.2.0"), Ordering::Equal);
        // Tie-broken by bytes, never Equal for different strings.
        assert_ne!(compare_versions("1.2", "1.2.0"), Ordering::Equal);
        assert_ne!(compare_versions("1.0+a", "1.0+b"), Ordering::Equal);
        assert_ne!(compare_versions("01", "1"), Ordering::Equal);
        assert!(is_older("1.0.0+build.1", "1.0.1"));
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "1".repeat(100);
        assert!(is_older("99999999999999999999999", &big));
    }

    proptest! {
        #[test]
        fn total_order(a in "[0-9a-z.+_-]{1,12}", b in "[0-9a-z.+_-]{1,12}", c in "[0-9a-z.+_-]{1,12}") {
            prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
            prop_assert_eq!(compare_versions(&a, &b) == Ordering::Equal, a == b);
            if compare_versions(&a, &b) != Ordering::Greater && compare_versions(&b, &c) != Ordering::Greater {
                prop_assert_ne!(compare_versions(&a, &c), Ordering::Greater);
            }
        }
    }
}
