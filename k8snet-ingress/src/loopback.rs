//! Loopback endpoints for local runs.
//!
//! The model validates objects the way the apiserver does, and the
//! apiserver refuses EndpointSlices with loopback addresses, so a manifest
//! pointing a Service at `127.0.0.1` loads with an error and without the
//! slice. Yet that is exactly how a first local run points the proxy at
//! local backends, so `ingress serve` accepts such slices with a warning
//! (design.md §3). [`recover_loopback_slices`] gets them back: it reloads
//! the files concerned with each loopback address replaced by a stand-in
//! the validator accepts (`127.a.b.c` → `240.a.b.c`, `::1` → `100::1`),
//! keeps only the slices that failed for that reason and now pass, and
//! puts the real addresses back. Build the cluster from the valid objects
//! plus these slices with `Cluster::from_objects`, which does not
//! re-validate.
//!
//! Embedders that build objects in code (tests) need none of this:
//! `Cluster::from_objects` takes loopback slices as they are.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8snet_model::{EndpointSlice, Error as ModelError, Kind, Manifests, Object, ObjectRef};

/// The slices `manifests` refused only for loopback addresses, recovered
/// from their files, and one warning per slice (or per file that could
/// not be reread, such as stdin).
pub fn recover_loopback_slices(manifests: &Manifests) -> (Vec<EndpointSlice>, Vec<String>) {
    let mut refused: BTreeSet<(String, ObjectRef)> = BTreeSet::new();
    for e in manifests.errors() {
        if let ModelError::Invalid { at, object, error } = e
            && object.kind == Kind::EndpointSlice
            && error.message.contains("loopback")
        {
            refused.insert((at.file.to_string(), object.clone()));
        }
    }
    let mut slices = Vec::new();
    let mut warnings = Vec::new();
    let files: BTreeSet<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!(
                    "{file}: cannot reread to accept loopback endpoints ({e}); those EndpointSlices are left out"
                ));
                continue;
            }
        };
        let (masked, stand_ins) = mask(&text);
        let mut again = Manifests::new();
        again.load_str(file, &masked);
        for loaded in again.objects() {
            let Object::EndpointSlice(s) = &loaded.object else {
                continue;
            };
            if !refused.contains(&(file.to_string(), loaded.object.reference())) {
                continue;
            }
            let mut s = s.clone();
            for ep in &mut s.endpoints {
                for a in &mut ep.addresses {
                    if let Some(real) = a.parse::<IpAddr>().ok().and_then(|ip| stand_ins.get(&ip)) {
                        *a = real.to_string();
                    }
                }
            }
            warnings.push(format!(
                "{}: EndpointSlice {}/{} has loopback addresses; accepted for this local run",
                loaded.at,
                s.metadata.namespace_or_default(),
                s.metadata.name
            ));
            slices.push(s);
        }
    }
    (slices, warnings)
}

/// Replaces every loopback address token of `text` by a stand-in; returns
/// the text and the map from stand-in back to the real address.
pub(crate) fn mask(text: &str) -> (String, HashMap<IpAddr, IpAddr>) {
    let is_ip_char = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut map = HashMap::new();
    let mut rest = text;
    while let Some(start) = rest.find(is_ip_char) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let len = run.find(|c| !is_ip_char(c)).unwrap_or(run.len());
        let token = &run[..len];
        // `127.0.0.1:8080`: the address is the part before the port.
        let (addr, tail) = match token.split_once(':') {
            Some((a, _)) if a.parse::<Ipv4Addr>().is_ok() => (a, &token[a.len()..]),
            _ => (token, ""),
        };
        match addr.parse::<IpAddr>().ok().filter(IpAddr::is_loopback) {
            Some(ip) => {
                let stand_in = stand_in(ip);
                map.insert(stand_in, ip);
                out.push_str(&stand_in.to_string());
                out.push_str(tail);
            }
            None => out.push_str(token),
        }
        rest = &run[len..];
    }
    out.push_str(rest);
    (out, map)
}

fn stand_in(ip: IpAddr) -> IpAddr {
    match ip {
        // 240.0.0.0/4 is reserved: never a real endpoint, yet valid.
        IpAddr::V4(v4) => {
            let [_, b, c, d] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(240, b, c, d))
        }
        // The discard-only prefix 100::/64.
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_loopback_tokens() {
        let (text, map) =
            mask("addresses: [\"127.0.0.2\", 10.0.0.1, ::1, fd00::1]\nx: 127.0.0.3:8080 cafe");
        assert_eq!(
            text,
            "addresses: [\"240.0.0.2\", 10.0.0.1, 100::1, fd00::1]\nx: 240.0.0.3:8080 cafe"
        );
        assert_eq!(
            map[&"240.0.0.2".parse().unwrap()],
            "127.0.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            map[&"100::1".parse().unwrap()],
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn recovers_slices_refused_for_loopback_only() {
        let dir =
            std::env::temp_dir().join(format!("k8snet-ingress-loopback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("local.yaml");
        std::fs::write(
            &file,
            "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.5]}]
ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: bad, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.6]}]
ports: [{name: http, port: 99999}]
",
        )
        .unwrap();
        let mut m = Manifests::new();
        m.load_path(&file);
        assert!(m.objects().is_empty());
        let (slices, warnings) = recover_loopback_slices(&m);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(slices.len(), 1, "{warnings:?}");
        assert_eq!(slices[0].metadata.name, "web-1");
        assert_eq!(slices[0].endpoints[0].addresses, ["127.0.0.5"]);
        assert!(
            warnings[0].contains("accepted for this local run"),
            "{warnings:?}"
        );
    }
}
