//! The age of an object, from its RFC 3339 `creationTimestamp`: which of
//! two Ingresses defining the same rule is older, and so wins it.

use k8snet_model::ObjectMeta;

/// An order key: older first; objects without a (parseable) timestamp
/// after all others — a manifest written by hand is "new" — then by
/// namespace and name, as Gateway API breaks ties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Age {
    /// Seconds and nanoseconds since the Unix epoch; `None` sorts last.
    created: Option<(i64, u32)>,
    namespace: String,
    name: String,
}

impl Age {
    pub(crate) fn of(meta: &ObjectMeta) -> Self {
        let created = meta.creation_timestamp.as_deref().and_then(parse_rfc3339);
        Self {
            // `None < Some` for Option, so absent timestamps are mapped to a
            // value after every real one.
            created: Some(created.unwrap_or((i64::MAX, 0))),
            namespace: meta.namespace_or_default().to_string(),
            name: meta.name.clone(),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to (seconds, nanoseconds) since
/// the epoch, or `None` when it is not that shape.
pub(crate) fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(9).take(digits).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || ob[3] != b':' {
                return None;
            }
            let sign = match ob[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + min * 60 + sec - offset, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2024-03-01T12:00:00Z"),
            Some((1_709_294_400, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T13:00:00.5+01:00"),
            Some((1_709_294_400, 500_000_000))
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-13-01T00:00:00Z",
            "2024-03-01T00:00:00",
            "x024-03-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn older_sorts_first_and_missing_timestamps_last() {
        let meta = |name: &str, ts: Option<&str>| {
            let mut m = ObjectMeta::namespaced("ns", name);
            m.creation_timestamp = ts.map(String::from);
            m
        };
        let old = Age::of(&meta("z", Some("2020-01-01T00:00:00Z")));
        let new = Age::of(&meta("a", Some("2021-01-01T00:00:00Z")));
        let none_a = Age::of(&meta("a", None));
        let none_b = Age::of(&meta("b", None));
        assert!(old < new && new < none_a && none_a < none_b);
    }
}
