//! CNI specification versions and the negotiation rules between a runtime,
//! a configuration and a plugin.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A version of the CNI specification that this crate speaks.
///
/// Ordered by release, so `v >= Version::V0_4_0` asks "does this version
/// have CHECK?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Version {
    /// 0.1.0: `ip4`/`ip6` results.
    V0_1_0,
    /// 0.2.0: as 0.1.0 (results unchanged).
    V0_2_0,
    /// 0.3.0: `interfaces`/`ips` results with `version`.
    V0_3_0,
    /// 0.3.1: as 0.3.0.
    V0_3_1,
    /// 0.4.0: adds CHECK and the cached prevResult on DEL.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0: adds GC, STATUS, `cniVersions` and interface `mtu`,
    /// `socketPath`, `pciID`.
    V1_1_0,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Self; 7] = [
        Self::V0_1_0,
        Self::V0_2_0,
        Self::V0_3_0,
        Self::V0_3_1,
        Self::V0_4_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];

    /// The newest version this crate implements.
    pub const LATEST: Self = Self::V1_1_0;

    /// The version's text, e.g. `"1.0.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Whether CHECK exists at this version (0.4.0 and later).
    pub fn has_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// Whether GC and STATUS exist at this version (1.1.0 and later).
    pub fn has_gc_and_status(self) -> bool {
        self >= Self::V1_1_0
    }

    /// Whether results at this version use `ip4`/`ip6` (0.1.0, 0.2.0).
    pub fn is_legacy_result(self) -> bool {
        self < Self::V0_3_0
    }

    /// The versions whose results Go reads with one decoder (`types020`,
    /// `types040`, `types100`): 0.1.0–0.2.0, 0.3.0–0.4.0 or 1.0.0–1.1.0.
    /// `ParsePrevResult` picks the decoder by the configuration's version
    /// and refuses a `prevResult` of another family.
    pub fn result_family(self) -> &'static [Self] {
        const LEGACY: [Version; 2] = [Version::V0_1_0, Version::V0_2_0];
        const V040: [Version; 3] = [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0];
        const V100: [Version; 2] = [Version::V1_0_0, Version::V1_1_0];
        match self {
            Self::V0_1_0 | Self::V0_2_0 => &LEGACY,
            Self::V0_3_0 | Self::V0_3_1 | Self::V0_4_0 => &V040,
            Self::V1_0_0 | Self::V1_1_0 => &V100,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that is not one this crate implements.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported CNI version {0:?} (supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
)]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;

    /// Parses `"1.0.0"`; an empty string means 0.1.0, as in libcni (configs
    /// from before the field existed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Self::V0_1_0);
        }
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares dotted version strings numerically (`"1.10.0" > "1.9.0"`);
/// `None` if either is not `major.minor.patch` of numbers.
pub fn compare_version_strings(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn parts(s: &str) -> Option<[u64; 3]> {
        let mut it = s.split('.');
        let out = [
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        ];
        it.next().is_none().then_some(out)
    }
    Some(parts(a)?.cmp(&parts(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!("0.4.0".parse::<Version>(), Ok(Version::V0_4_0));
        assert_eq!("".parse::<Version>(), Ok(Version::V0_1_0));
        assert!("2.0.0".parse::<Version>().is_err());
        assert!(Version::V0_3_1 < Version::V0_4_0);
        assert!(Version::V0_4_0.has_check() && !Version::V0_3_1.has_check());
        assert!(Version::V1_1_0.has_gc_and_status() && !Version::V1_0_0.has_gc_and_status());
        assert_eq!(
            Version::V0_3_0.result_family(),
            Version::V0_4_0.result_family()
        );
        assert_ne!(
            Version::V0_2_0.result_family(),
            Version::V0_3_0.result_family()
        );
        assert_ne!(
            Version::V0_4_0.result_family(),
            Version::V1_0_0.result_family()
        );
        for v in Version::ALL {
            assert!(v.result_family().contains(&v));
        }
        for v in Version::ALL {
            assert_eq!(v.as_str().parse::<Version>(), Ok(v));
        }
    }

    #[test]
    fn compares_strings_numerically() {
        use std::cmp::Ordering;
        assert_eq!(
            compare_version_strings("1.10.0", "1.9.0"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_version_strings("1.0", "1.0.0"), None);
    }
}
