//! Network configurations: one plugin's configuration as it arrives on
//! stdin ([`NetConf`]) and the configuration list a runtime reads
//! ([`NetConfList`]). Keys this crate does not know are kept, so they pass
//! through to plugins untouched.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::validate_id;
use crate::error::{Error, Result};
use crate::result::{CniResult, Dns};
use crate::version::{Version, compare_version_strings};

/// Parses JSON bytes into an object, with a decode error (code 6) otherwise.
pub(crate) fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        field: ".".into(),
        message: format!("{what} is not valid JSON: {e}"),
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::Decode {
            field: ".".into(),
            message: format!("{what} must be a JSON object"),
        }),
    }
}

/// Deserializes `v` into `T`; errors name the field (`ipam.ranges[0][0].subnet`)
/// under `prefix`. Wrong types are invalid configuration (code 7).
pub fn typed<T: DeserializeOwned>(v: &Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.trim_end_matches('.').to_owned()
        } else {
            format!("{prefix}{path}")
        };
        Error::config(
            if field.is_empty() { ".".into() } else { field },
            e.into_inner().to_string(),
        )
    })
}

/// The keys every plugin configuration may carry, checked for type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Common {
    #[serde(default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    plugin_type: Option<String>,
    #[serde(default)]
    capabilities: Option<BTreeMap<String, bool>>,
    #[serde(default)]
    ipam: Option<Map<String, Value>>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default)]
    runtime_config: Option<Map<String, Value>>,
}

/// One plugin's configuration as a plugin receives it: the well-known keys
/// parsed, everything else in [`NetConf::raw`].
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: Version,
    /// `name`: the network name.
    pub name: String,
    /// `type`: the plugin's binary name.
    pub plugin_type: String,
    /// `capabilities` the plugin declares.
    pub capabilities: BTreeMap<String, bool>,
    /// `ipam`, if present (its `type` names the IPAM plugin).
    pub ipam: Option<Map<String, Value>>,
    /// `dns`.
    pub dns: Option<Dns>,
    /// `runtimeConfig`: capability arguments the runtime injected.
    pub runtime_config: Map<String, Value>,
    /// `prevResult` as it came, at its own `cniVersion` (the
    /// configuration's when it has none), which is in the configuration's
    /// result family ([`Version::result_family`]). A plugin passing it
    /// through prints it unchanged when that is the configuration's
    /// version, and converted otherwise (see [`CniResult::try_to_json`]).
    pub prev_result: Option<CniResult>,
    /// The whole object, unknown keys included.
    pub raw: Map<String, Value>,
}

impl NetConf {
    /// Parses a plugin's stdin.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for bad JSON, [`Error::IncompatibleVersion`] for an
    /// unknown `cniVersion`, [`Error::Other`] (code 999, as the reference
    /// plugins' "could not parse prevResult") naming `prevResult.cniVersion`
    /// for a `prevResult` of another result family than the configuration
    /// (Go's ParsePrevResult refuses it; a runtime sends the list's
    /// version), [`Error::Config`] naming the field otherwise.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        Self::from_map(parse_object(bytes, "the network configuration")?)
    }

    /// Parses an already-decoded object; see [`NetConf::from_slice`].
    ///
    /// # Errors
    ///
    /// As [`NetConf::from_slice`].
    pub fn from_map(raw: Map<String, Value>) -> Result<Self> {
        let obj = Value::Object(raw);
        let c: Common = typed(&obj, "")?;
        let Value::Object(raw) = obj else {
            return Err(Error::config(".", "not an object"));
        };
        let version_text = c.cni_version.unwrap_or_default();
        let cni_version: Version =
            version_text
                .parse()
                .map_err(|_| Error::IncompatibleVersion {
                    config: version_text.clone(),
                    supported: Version::ALL.iter().map(|v| v.as_str().to_owned()).collect(),
                })?;
        let name = c.name.unwrap_or_default();
        if !name.is_empty() {
            validate_id(&name).map_err(|m| Error::config("name", m))?;
        }
        let plugin_type = c.plugin_type.unwrap_or_default();
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                CniResult::from_json_at(v, cni_version, "prevResult.").map_err(|e| match e {
                    Error::Decode { field, message } => Error::config(field, message),
                    other => other,
                })?,
            ),
        };
        if let Some(prev) = &prev_result {
            let family = cni_version.result_family();
            if !family.contains(&prev.cni_version) {
                let names: Vec<&str> = family.iter().map(|v| v.as_str()).collect();
                return Err(Error::other(
                    crate::error::code::INTERNAL,
                    format!(
                        "prevResult.cniVersion: result type supports [{}] but unmarshalled CNIVersion is {:?}",
                        names.join(" "),
                        prev.cni_version.as_str()
                    ),
                ));
            }
        }
        Ok(Self {
            cni_version,
            name,
            plugin_type,
            capabilities: c.capabilities.unwrap_or_default(),
            ipam: c.ipam,
            dns: c.dns,
            runtime_config: c.runtime_config.unwrap_or_default(),
            prev_result,
            raw,
        })
    }

    /// Parses the whole configuration as `T` (a plugin's own keys); errors
    /// name the field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`].
    pub fn parse_as<T: DeserializeOwned>(&self) -> Result<T> {
        typed(&Value::Object(self.raw.clone()), "")
    }

    /// The `ipam.type`, if any.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref()?.get("type")?.as_str()
    }

    /// `args.cni.<key>` (the replacement for `CNI_ARGS`).
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.raw.get("args")?.get("cni")?.get(key)
    }
}

/// Accepts `true`/`false` and the strings `"true"`/`"false"`, as libcni
/// does for `disableCheck` and `disableGC`.
fn loose_bool(v: Option<&Value>, field: &str) -> Result<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::config(field, format!("{s:?} is not a boolean"))),
        },
        Some(other) => Err(Error::config(field, format!("{other} is not a boolean"))),
    }
}

/// A configuration list (`.conflist`), as a runtime loads it.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfList {
    /// `cniVersion` as written (may be empty).
    pub cni_version: String,
    /// `cniVersions` as written.
    pub cni_versions: Vec<String>,
    /// `name`.
    pub name: String,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC`.
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins`.
    pub load_only_inlined_plugins: bool,
    /// `plugins`, each as written (unknown keys kept).
    pub plugins: Vec<Map<String, Value>>,
    version: Version,
    bytes: Vec<u8>,
}

impl NetConfList {
    /// Parses a configuration list, or a single plugin configuration (a
    /// `.conf` with no `plugins` key), which becomes a list of one.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for bad JSON; [`Error::Config`] naming the field
    /// (`plugins[1].type: missing`); [`Error::IncompatibleVersion`] when no
    /// listed version is one this crate implements.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut top = parse_object(bytes, "the network configuration list")?;
        if !top.contains_key("plugins") {
            // A single plugin's configuration: a list of one (libcni's
            // ConfListFromConf).
            let mut plugin = top.clone();
            plugin.remove("cniVersion");
            plugin.remove("name");
            top.retain(|k, _| k == "cniVersion" || k == "name");
            top.insert("plugins".into(), Value::Array(vec![Value::Object(plugin)]));
        }
        let str_field = |k: &str| -> Result<String> {
            match top.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(Error::config(k, format!("{other} is not a string"))),
            }
        };
        let name = str_field("name")?;
        validate_id(&name).map_err(|m| Error::config("name", m))?;
        let cni_version = str_field("cniVersion")?;
        let cni_versions: Vec<String> = match top.get("cniVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => typed(v, "cniVersions")?,
        };
        let version = negotiate(&cni_version, &cni_versions)?;
        let plugins = match top.get("plugins") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let field = format!("plugins[{i}]");
                    let Value::Object(m) = p else {
                        return Err(Error::config(field, "must be an object"));
                    };
                    match m.get("type") {
                        Some(Value::String(t)) if !t.is_empty() => {}
                        Some(Value::String(_)) | None | Some(Value::Null) => {
                            return Err(Error::config(format!("{field}.type"), "missing"));
                        }
                        Some(other) => {
                            return Err(Error::config(
                                format!("{field}.type"),
                                format!("{other} is not a string"),
                            ));
                        }
                    }
                    if let Some(caps) = m.get("capabilities") {
                        typed::<BTreeMap<String, bool>>(caps, &format!("{field}.capabilities"))?;
                    }
                    Ok(m.clone())
                })
                .collect::<Result<Vec<_>>>()?,
            Some(Value::Array(_)) => return Err(Error::config("plugins", "must not be empty")),
            None | Some(Value::Null) => return Err(Error::config("plugins", "missing")),
            Some(other) => return Err(Error::config("plugins", format!("{other} is not a list"))),
        };
        Ok(Self {
            disable_check: loose_bool(top.get("disableCheck"), "disableCheck")?,
            disable_gc: loose_bool(top.get("disableGC"), "disableGC")?,
            load_only_inlined_plugins: loose_bool(
                top.get("loadOnlyInlinedPlugins"),
                "loadOnlyInlinedPlugins",
            )?,
            cni_version,
            cni_versions,
            name,
            plugins,
            version,
            bytes: bytes.to_vec(),
        })
    }

    /// The version the runtime uses: the highest of `cniVersions` and
    /// `cniVersion` that this crate implements.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The bytes it was read from (libcni caches them with each attachment).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The type of plugin `i`.
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins
            .get(i)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The capabilities plugin `i` declares (only those set to `true`).
    pub fn capabilities(&self, i: usize) -> Vec<String> {
        self.plugins
            .get(i)
            .and_then(|p| p.get("capabilities"))
            .and_then(Value::as_object)
            .map(|caps| {
                caps.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Picks the version: the highest of `versions ∪ {version}` that this crate
/// implements. Newer versions than ours are skipped, as libcni skips those
/// newer than its own.
fn negotiate(version: &str, versions: &[String]) -> Result<Version> {
    let mut best: Option<Version> = None;
    let candidates = versions
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("cniVersions[{i}]"), v.as_str()))
        .chain((!version.is_empty()).then(|| ("cniVersion".to_owned(), version)));
    for (field, v) in candidates {
        if let Ok(parsed) = v.parse::<Version>() {
            best = best.max(Some(parsed));
        } else if compare_version_strings(v, Version::LATEST.as_str()).is_none() {
            return Err(Error::config(
                field,
                format!("{v:?} is not a version (major.minor.patch)"),
            ));
        }
    }
    match best {
        Some(v) => Ok(v),
        // An empty version is 0.1.0, as in libcni.
        None if version.is_empty() && versions.is_empty() => Ok(Version::V0_1_0),
        None => Err(Error::IncompatibleVersion {
            config: versions
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(version))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","),
            supported: Version::ALL.iter().map(|v| v.as_str().to_owned()).collect(),
        }),
    }
}

/// One attachment named in GC's valid set (`cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name.
    pub ifname: String,
}

/// The valid attachments of a GC request: `cni.dev/valid-attachments` (the
/// Go types and HEAD spec) or `cni.dev/attachments` (the spec text at
/// v1.1.0); libcni sends both, and either is accepted. `None` if neither
/// key is present.
///
/// # Errors
///
/// [`Error::Config`] naming the key when it is not a list of attachments.
pub fn gc_attachments(conf: &Map<String, Value>) -> Result<Option<Vec<Attachment>>> {
    let mut out: Option<Vec<Attachment>> = None;
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        if let Some(v) = conf.get(key).filter(|v| !v.is_null()) {
            let list: Vec<Attachment> = typed(v, key)?;
            out.get_or_insert_with(Vec::new).extend(list);
        }
    }
    if let Some(list) = &mut out {
        list.sort();
        list.dedup();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_negotiates_and_names_fields() {
        let l = NetConfList::from_slice(
            br#"{"cniVersion":"1.0.0","cniVersions":["0.3.1","1.1.0","9.0.0"],"name":"n",
                "disableCheck":"true","plugins":[{"type":"a","x":1}]}"#,
        )
        .unwrap();
        assert_eq!(l.version(), Version::V1_1_0);
        assert!(l.disable_check);
        assert_eq!(l.plugins[0]["x"], 1);
        let e = NetConfList::from_slice(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "plugins[1].type: missing");
        assert_eq!(e.code(), 7);
        let e = NetConfList::from_slice(
            br#"{"cniVersion":"7.0.0","name":"n","plugins":[{"type":"a"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), 1);
        let e = NetConfList::from_slice(b"{").unwrap_err();
        assert_eq!(e.code(), 6);
        let single = NetConfList::from_slice(
            br#"{"cniVersion":"0.4.0","name":"n","type":"bridge","bridge":"b"}"#,
        )
        .unwrap();
        assert_eq!(single.plugin_type(0), "bridge");
        assert!(!single.plugins[0].contains_key("name"));
    }

    #[test]
    fn gc_accepts_both_keys() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}],
                "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(gc_attachments(&m).unwrap().unwrap().len(), 2);
        assert_eq!(gc_attachments(&Map::new()).unwrap(), None);
    }
}
