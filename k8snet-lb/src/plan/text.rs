//! The plan as text (`k8snet lb plan --format text`).

use std::fmt::{self, Display, Write as _};

use super::types::{Pool, ServicePort, ServiceTable, Target};

impl Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClusterPool => "cluster pool",
            Self::LocalPool => "local pool",
            Self::Reject => "reject (no endpoints)",
            Self::Drop => "drop (no local endpoints)",
        })
    }
}

fn pool(out: &mut String, name: &str, p: &Pool) -> fmt::Result {
    writeln!(out, "  {name} pool: {} slots", p.slots.len())?;
    for (e, n) in p.endpoints.iter().zip(p.counts()) {
        let mut flags = Vec::new();
        if e.local {
            flags.push("local");
        }
        if !e.ready {
            flags.push("not ready");
        }
        if e.terminating {
            flags.push("terminating");
        }
        let node = e.node.as_deref().unwrap_or("-");
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", flags.join(", "))
        };
        writeln!(
            out,
            "    {:<28} node {node:<12} {n:>5} slots{flags}",
            e.key()
        )?;
    }
    Ok(())
}

impl Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let addr = std::net::SocketAddr::new(self.cluster_ip, self.port);
        writeln!(out, "{}  {addr}", self.id)?;
        let mut line = format!("  clusterIP -> {}", self.internal);
        if self.masquerade_off_cluster {
            line.push_str(", masquerade from outside the cluster");
        }
        if let Some(t) = self.affinity_timeout {
            let _ = write!(line, ", ClientIP affinity {t}s");
        }
        writeln!(out, "{line}")?;
        if let Some(ext) = &self.external {
            let mut front = Vec::new();
            if let Some(np) = self.node_port {
                front.push(format!("nodePort {np}"));
            }
            front.extend(
                self.external_ips
                    .iter()
                    .map(|ip| format!("externalIP {ip}")),
            );
            front.extend(
                self.load_balancer_ips
                    .iter()
                    .map(|ip| format!("loadBalancer {ip}")),
            );
            let how = if ext.masquerade_all {
                "masqueraded".to_string()
            } else {
                "source kept; pods and this node short-circuit to the cluster pool".to_string()
            };
            writeln!(
                out,
                "  {} ({:?} policy) -> {}, {how}",
                front.join(", "),
                ext.policy,
                ext.target
            )?;
            if !self.source_ranges.is_empty() {
                let r: Vec<String> = self.source_ranges.iter().map(ToString::to_string).collect();
                writeln!(out, "  load balancer sources: {}", r.join(", "))?;
            }
        }
        if let Some(p) = &self.cluster_pool {
            pool(&mut out, "cluster", p)?;
        }
        if let Some(p) = &self.local_pool {
            pool(&mut out, "local", p)?;
        }
        f.write_str(&out)
    }
}

impl Display for ServiceTable {
    /// A readable listing: one block per Service port, its frontends, where
    /// each kind of traffic goes, and each pool's endpoints with their share
    /// of the Maglev slots.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ips: Vec<String> = self.node_ips.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "node {} ({}), {} service ports, jhash seed {:#010x}",
            self.node,
            if ips.is_empty() {
                "no IPs".to_string()
            } else {
                ips.join(", ")
            },
            self.ports.len(),
            self.seed
        )?;
        for p in &self.ports {
            write!(f, "\n{p}")?;
        }
        for h in &self.health_checks {
            writeln!(
                f,
                "\nhealth check {}/{} on node port {}: {} local endpoint(s) -> {}",
                h.namespace,
                h.name,
                h.node_port,
                h.local_endpoints,
                h.response(true).0
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
