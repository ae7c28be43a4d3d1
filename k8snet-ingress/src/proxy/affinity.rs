//! Cookie affinity (`affinity: cookie`): the cookie names an endpoint by
//! a stable hash of its address, so it stays valid across reloads and
//! proxy replicas, and is ignored once that endpoint is gone.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::COOKIE;

use crate::annotations::CookieAffinity;
use rustc_hash::FxHasher;

/// The cookie value naming an endpoint.
pub(crate) fn value(addr: &SocketAddr) -> String {
    let mut h = FxHasher::default();
    addr.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The index of the endpoint the request's affinity cookie names, if it
/// names one that is still there.
pub(crate) fn pinned(headers: &HeaderMap, name: &str, endpoints: &[SocketAddr]) -> Option<usize> {
    let wanted = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))?;
    endpoints.iter().position(|a| value(a) == wanted)
}

/// The `Set-Cookie` value pinning a client to `addr`. `rule_path` is the
/// matched rule's path (used when the annotation sets none).
pub(crate) fn set_cookie(c: &CookieAffinity, addr: &SocketAddr, rule_path: &str) -> String {
    let path = c.path.as_deref().unwrap_or(rule_path);
    let mut s = format!("{}={}; Path={path}", c.name, value(addr));
    if let Some(age) = c.max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if let Some(secs) = c.expires {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.push_str(&format!(
            "; Expires={}",
            http_date(now.saturating_add(secs))
        ));
    }
    if let Some(d) = &c.domain {
        s.push_str(&format!("; Domain={d}"));
    }
    if c.secure || c.same_site.as_deref() == Some("None") {
        // Browsers drop SameSite=None cookies that are not Secure.
        s.push_str("; Secure");
    }
    if let Some(ss) = &c.same_site {
        s.push_str(&format!("; SameSite={ss}"));
    }
    s.push_str("; HttpOnly");
    s
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_709_294_400), "Fri, 01 Mar 2024 12:00:00 GMT");
    }

    #[test]
    fn cookies_pin_endpoints_that_still_exist() {
        let eps: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            format!("a=b; route={}", value(&eps[1])).parse().unwrap(),
        );
        assert_eq!(pinned(&h, "route", &eps), Some(1));
        assert_eq!(pinned(&h, "other", &eps), None);
        assert_eq!(pinned(&h, "route", &eps[..1]), None);
        let c = CookieAffinity {
            name: "route".into(),
            max_age: Some(60),
            same_site: Some("None".into()),
            ..CookieAffinity::default()
        };
        let s = set_cookie(&c, &eps[0], "/app");
        assert_eq!(
            s,
            format!(
                "route={}; Path=/app; Max-Age=60; Secure; SameSite=None; HttpOnly",
                value(&eps[0])
            )
        );
    }
}
