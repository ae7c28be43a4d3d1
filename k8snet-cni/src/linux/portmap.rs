//! The portmap plugin on nftables (a chained plugin: it needs `prevResult`
//! and passes it through).

use k8snet_nft::{Family, Nft};

use crate::error::{Error, Result};
use crate::plugin::{Plugin, Request};
use crate::portmap::{
    PORTMAP_TABLE, container_ips, elements, mappings, points_at, setup_batch, teardown_batch,
};
use crate::result::CniResult;

/// The portmap plugin (binary `k8snet-portmap`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Portmap;

fn nft_err(what: &str) -> impl FnOnce(k8snet_nft::Error) -> Error + '_ {
    move |e| Error::kernel(what, e)
}

fn prev(req: &Request) -> Result<&CniResult> {
    req.conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::config("prevResult", "must be called as a chained plugin"))
}

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let prev = prev(req)?;
        let maps = mappings(req)?;
        if maps.is_empty() {
            return Ok(prev.clone());
        }
        let ips = container_ips(prev);
        let elems = elements(&maps, &ips);
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        nft.apply(&setup_batch(&elems)?).map_err(|e| {
            Error::kernel(
                "runtimeConfig.portMappings",
                format!("installing the port mappings (is a hostPort already taken?): {e}"),
            )
        })?;
        Ok(prev.clone())
    }

    /// Removes the mappings to the container's addresses (from
    /// `prevResult`); without it, those of `portMappings` by host port.
    fn del(&self, req: &Request) -> Result<()> {
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        let Some(table) = nft
            .read_table(Family::Inet, PORTMAP_TABLE)
            .map_err(nft_err("reading the portmap table"))?
        else {
            return Ok(());
        };
        let batch = match &req.conf.prev_result {
            Some(prev) => {
                let ips = container_ips(prev);
                teardown_batch(&table, |_, e| points_at(e, &ips))
            }
            None => {
                let maps = mappings(req)?;
                teardown_batch(&table, |k, _| {
                    maps.iter().any(|m| {
                        k.0.ends_with(&[
                            k8snet_nft::Value::Proto(m.proto),
                            k8snet_nft::Value::Port(m.host_port),
                        ])
                    })
                })
            }
        };
        if let Some(b) = batch {
            nft.apply(&b).map_err(nft_err("removing port mappings"))?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let prev = prev(req)?;
        let maps = mappings(req)?;
        if maps.is_empty() {
            return Ok(());
        }
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        let table = nft
            .read_table(Family::Inet, PORTMAP_TABLE)
            .map_err(nft_err("reading the portmap table"))?
            .ok_or_else(|| Error::other(crate::code::INTERNAL, "portmap table missing"))?;
        for (map, key, e) in elements(&maps, &container_ips(prev)) {
            let found = table.sets.get(map).and_then(|s| s.elements.get(&key));
            if found != Some(&e) {
                return Err(Error::other(
                    crate::code::INTERNAL,
                    format!("port mapping {key:?} missing from map {map}"),
                ));
            }
        }
        Ok(())
    }
}
