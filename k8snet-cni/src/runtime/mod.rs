//! The runtime side, doing libcni's duties: run a configuration list's
//! plugins (ADD in order with `prevResult` chaining, DEL in reverse with
//! the cached result, CHECK, GC, STATUS) and keep the attachment cache in
//! libcni's on-disk format ([`cache`]).

pub mod cache;
pub(crate) mod exec;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{Attachment, NetConfList};
use crate::env::{Command, validate_id, validate_ifname};
use crate::error::{Error, Result};
use crate::result::CniResult;
use crate::version::Version;

pub use exec::find_plugin;

/// The arguments of one attachment, besides the configuration (libcni's
/// `RuntimeConf`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeConf {
    /// The container ID.
    pub container_id: String,
    /// The container's netns path (optional for DEL).
    pub netns: Option<PathBuf>,
    /// The interface name inside the container.
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `ips`, ...); each plugin gets
    /// those it declares in `capabilities`, under `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

/// A runtime: where plugins are found and where the cache lives.
#[derive(Clone, Debug)]
pub struct Runtime {
    path: Vec<PathBuf>,
    cache_dir: PathBuf,
}

impl Runtime {
    /// Plugins are looked up in `path` (in order); the cache is kept under
    /// `cache_dir` (libcni's default is `/var/lib/cni`).
    pub fn new(path: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            path,
            cache_dir: cache_dir.into(),
        }
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// ADD: runs every plugin in order, each with the previous one's result
    /// as `prevResult`, and caches the final result. As libcni's
    /// AddNetworkList, a plugin's result is passed on and cached as the
    /// plugin printed it (at its own version, not converted to the list's);
    /// the result returned is the final one converted to the list's
    /// version. After a failure the caller must DEL ([`Runtime::del_list`]),
    /// as the spec asks of runtimes.
    ///
    /// # Errors
    ///
    /// The first plugin's error (its code kept), invalid arguments, or a
    /// final result that cannot be converted to the list's version (a 1.x
    /// result without addresses for a 0.1.0/0.2.0 list; code 999, nothing
    /// cached).
    pub fn add_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<CniResult> {
        validate_args(list, rt, true)?;
        let version = list.version();
        let mut prev: Option<CniResult> = None;
        for i in 0..list.plugins.len() {
            let stdin = self.plugin_config(list, i, prev.as_ref(), Some(rt))?;
            let out = self.exec(list, i, Command::Add, &stdin, rt)?;
            let result = CniResult::from_slice(&out, version).map_err(|e| Error::Exec {
                plugin: list.plugin_type(i).to_owned(),
                message: format!("invalid result: {e}"),
            })?;
            prev = Some(result);
        }
        let printed = prev.unwrap_or_else(|| CniResult::new(version));
        let result = printed.try_converted(version)?;
        cache::write(
            &self.cache_dir,
            &cache::CacheEntry {
                kind: cache::CACHE_KIND.into(),
                container_id: rt.container_id.clone(),
                config: list.bytes().to_vec(),
                if_name: rt.ifname.clone(),
                network_name: list.name.clone(),
                netns: path_string(rt.netns.as_deref()),
                cni_args: rt.args.clone(),
                capability_args: rt.capability_args.clone(),
                result: Some(printed.to_json(printed.cni_version)),
            },
        )?;
        Ok(result)
    }

    /// DEL: runs every plugin in reverse order with the cached result as
    /// `prevResult` (from 0.4.0; an unreadable cache entry is dropped and
    /// DEL goes on without it), then removes the cache entry.
    ///
    /// # Errors
    ///
    /// The first plugin's error; the cache entry is then kept.
    pub fn del_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<()> {
        validate_args(list, rt, false)?;
        let path = cache::cache_path(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname);
        let cached = if list.version() >= Version::V0_4_0 {
            self.cached_result(list, rt).unwrap_or_else(|_| {
                let _ = cache::remove(&path);
                None
            })
        } else {
            None
        };
        for i in (0..list.plugins.len()).rev() {
            let stdin = self.plugin_config(list, i, cached.as_ref(), Some(rt))?;
            self.exec(list, i, Command::Del, &stdin, rt)?;
        }
        cache::remove(&path)
    }

    /// CHECK: refused below 0.4.0, skipped under `disableCheck`; runs every
    /// plugin in order with the cached result.
    ///
    /// # Errors
    ///
    /// [`Error::IncompatibleVersion`] below 0.4.0; the first plugin's error.
    pub fn check_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<()> {
        if !list.version().has_check() {
            return Err(Error::IncompatibleVersion {
                config: list.version().to_string(),
                supported: vec!["0.4.0 or later for CHECK".into()],
            });
        }
        if list.disable_check {
            return Ok(());
        }
        validate_args(list, rt, true)?;
        let cached = self.cached_result(list, rt)?;
        for i in 0..list.plugins.len() {
            let stdin = self.plugin_config(list, i, cached.as_ref(), Some(rt))?;
            self.exec(list, i, Command::Check, &stdin, rt)?;
        }
        Ok(())
    }

    /// GC: skipped under `disableGC`, and (as libcni) a no-op when the
    /// cache directory exists but cannot be listed. First a DEL (at any
    /// version) for every cached attachment of this network that is not in
    /// `valid`, then, from
    /// 1.1.0, GC to every plugin with `cni.dev/valid-attachments` (and
    /// `cni.dev/attachments`, the key of the spec text at v1.1.0). Carries
    /// on after errors and reports them all.
    ///
    /// # Errors
    ///
    /// [`Error::Many`] with every failure.
    pub fn gc_list(&self, list: &NetConfList, valid: &[Attachment]) -> Result<()> {
        if list.disable_gc {
            return Ok(());
        }
        // libcni returns nil, without DEL or GC, when it cannot list its
        // cache (a missing directory is an empty cache here, so GC still
        // reaches the plugins); the reason is logged, not returned.
        let entries = match cache::list(&self.cache_dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(
                    network = %list.name,
                    "GC skipped: cannot list the result cache {}: {e}",
                    self.cache_dir.display()
                );
                return Ok(());
            }
        };
        let mut errors = Vec::new();
        for entry in entries {
            let att = Attachment {
                container_id: entry.container_id.clone(),
                ifname: entry.if_name.clone(),
            };
            if entry.network_name != list.name || valid.contains(&att) {
                continue;
            }
            let rt = RuntimeConf {
                container_id: entry.container_id,
                netns: (!entry.netns.is_empty()).then(|| PathBuf::from(&entry.netns)),
                ifname: entry.if_name,
                args: entry.cni_args,
                capability_args: entry.capability_args,
            };
            if let Err(e) = self.del_list(list, &rt) {
                errors.push(e);
            }
        }
        if list.version().has_gc_and_status() {
            let valid_json = serde_json::to_value(valid).unwrap_or(Value::Null);
            for i in 0..list.plugins.len() {
                let mut conf = match self.plugin_config_map(list, i, None, None) {
                    Ok(c) => c,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                conf.insert("cni.dev/valid-attachments".into(), valid_json.clone());
                conf.insert("cni.dev/attachments".into(), valid_json.clone());
                let stdin = serde_json::to_vec(&conf).unwrap_or_default();
                if let Err(e) = self.exec(list, i, Command::Gc, &stdin, &RuntimeConf::default()) {
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// STATUS: a no-op below 1.1.0; otherwise asks every plugin in order and
    /// returns the first error (its code, 50 or 51, kept).
    ///
    /// # Errors
    ///
    /// The first plugin's error.
    pub fn status_list(&self, list: &NetConfList) -> Result<()> {
        if !list.version().has_gc_and_status() {
            return Ok(());
        }
        for i in 0..list.plugins.len() {
            let stdin = self.plugin_config(list, i, None, None)?;
            self.exec(list, i, Command::Status, &stdin, &RuntimeConf::default())?;
        }
        Ok(())
    }

    /// The cached result of an attachment, converted to the list's version
    /// (libcni's getCachedResult).
    ///
    /// # Errors
    ///
    /// An unreadable cache entry, or a result that cannot be converted to
    /// the list's version (code 999, "failed to convert cached result to
    /// config version: ...", as libcni).
    pub fn cached_result(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<Option<CniResult>> {
        let path = cache::cache_path(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname);
        let Some(entry) = cache::read(&path)? else {
            return Ok(None);
        };
        entry
            .result
            .map(|v| {
                CniResult::from_json(&v, list.version())?
                    .try_converted(list.version())
                    .map_err(|e| {
                        Error::other(
                            crate::error::code::INTERNAL,
                            format!("failed to convert cached result to config version: {e}"),
                        )
                    })
            })
            .transpose()
    }

    /// The cached attachments, all or those of one container.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the cache cannot be listed.
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Result<Vec<cache::CacheEntry>> {
        let mut all = cache::list(&self.cache_dir)?;
        if let Some(id) = container_id {
            all.retain(|e| e.container_id == id);
        }
        Ok(all)
    }

    /// Asks a plugin which versions it supports (VERSION).
    ///
    /// # Errors
    ///
    /// The plugin cannot be found or run, or answers nonsense.
    pub fn version_info(&self, plugin_type: &str) -> Result<Vec<String>> {
        let path = find_plugin(plugin_type, &self.path)?;
        let stdin = br#"{"cniVersion":"1.1.0"}"#;
        let out = exec::run(
            &path,
            plugin_type,
            Command::Version,
            stdin,
            &RuntimeConf::default(),
            &self.path,
        )?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| Error::Exec {
            plugin: plugin_type.to_owned(),
            message: format!("invalid VERSION answer: {e}"),
        })?;
        Ok(v.get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The stdin of plugin `i`: its configuration with `name`, `cniVersion`,
    /// `prevResult` (when given) and `runtimeConfig` (the capability
    /// arguments it declares, when any) injected, and `capabilities`
    /// removed (SPEC "Deriving execution configuration from plugin
    /// configuration"; libcni leaves it in, but no plugin may rely on it).
    fn plugin_config_map(
        &self,
        list: &NetConfList,
        i: usize,
        prev: Option<&CniResult>,
        rt: Option<&RuntimeConf>,
    ) -> Result<Map<String, Value>> {
        let mut conf = list
            .plugins
            .get(i)
            .cloned()
            .ok_or_else(|| Error::config(format!("plugins[{i}]"), "missing"))?;
        let version = list.version();
        conf.remove("capabilities");
        conf.insert("name".into(), Value::String(list.name.clone()));
        conf.insert("cniVersion".into(), Value::String(version.to_string()));
        // As libcni: the previous result as it is (a plugin's as printed,
        // a cached one as converted to the list's version).
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.to_json(prev.cni_version));
        }
        if let Some(rt) = rt {
            let rc: Map<String, Value> = list
                .capabilities(i)
                .into_iter()
                .filter_map(|c| rt.capability_args.get(&c).map(|v| (c, v.clone())))
                .collect();
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        Ok(conf)
    }

    fn plugin_config(
        &self,
        list: &NetConfList,
        i: usize,
        prev: Option<&CniResult>,
        rt: Option<&RuntimeConf>,
    ) -> Result<Vec<u8>> {
        let conf = self.plugin_config_map(list, i, prev, rt)?;
        serde_json::to_vec(&conf).map_err(|e| Error::io("encoding plugin configuration", e.into()))
    }

    fn exec(
        &self,
        list: &NetConfList,
        i: usize,
        command: Command,
        stdin: &[u8],
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>> {
        let ty = list.plugin_type(i);
        let path = find_plugin(ty, &self.path)?;
        exec::run(&path, ty, command, stdin, rt, &self.path)
    }
}

fn path_string(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// libcni's checks before running plugins.
fn validate_args(list: &NetConfList, rt: &RuntimeConf, need_netns: bool) -> Result<()> {
    // libcni's ValidateContainerID: no container ID is an unknown
    // container (code 3), nothing to clean up.
    if rt.container_id.is_empty() {
        return Err(Error::other(
            crate::error::code::UNKNOWN_CONTAINER,
            "CNI_CONTAINERID: missing containerID",
        ));
    }
    validate_id(&rt.container_id).map_err(|m| Error::Env {
        var: "CNI_CONTAINERID".into(),
        message: m,
    })?;
    validate_id(&list.name).map_err(|m| Error::config("name", m))?;
    validate_ifname(&rt.ifname).map_err(|m| Error::Env {
        var: "CNI_IFNAME".into(),
        message: m,
    })?;
    if need_netns && rt.netns.is_none() {
        return Err(Error::Env {
            var: "CNI_NETNS".into(),
            message: "required for ADD and CHECK".into(),
        });
    }
    Ok(())
}
