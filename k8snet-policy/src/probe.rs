//! Probe lists: the input of `k8snet policy eval --probes P`.

use serde::{Deserialize, Serialize};

use k8snet_model::{Protocol, validate::parse_ip_strict};

use crate::compile::PolicySet;
use crate::error::Error;
use crate::flow::{Endpoint, Flow, Verdict};

/// One probe: `{from, to, port, protocol}`; `from`/`to` is `ns/pod` or an
/// IP address, the protocol defaults to TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Probe {
    /// The source.
    pub from: String,
    /// The destination.
    pub to: String,
    /// The destination port.
    pub port: u16,
    /// The protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A probe with its verdict, as `k8snet policy eval` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProbeResult {
    /// The source, as given.
    pub from: String,
    /// The destination, as given.
    pub to: String,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// `allow` or `deny`.
    pub verdict: Verdict,
    /// The explanation without its verdict prefix.
    pub reason: String,
}

impl Probe {
    /// A probe.
    pub fn new(
        from: impl Into<String>,
        to: impl Into<String>,
        protocol: Protocol,
        port: u16,
    ) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            port,
            protocol,
        }
    }

    /// The flow the probe describes.
    ///
    /// # Errors
    /// [`Error::Endpoint`] when `from` or `to` is neither `ns/pod` nor an
    /// address.
    pub fn flow(&self) -> Result<Flow, Error> {
        let endpoint = |s: &str| -> Result<Endpoint, Error> {
            let ep: Endpoint = s.parse()?;
            // Addresses as the apiserver writes them (no leading zeros).
            if let Endpoint::Ip(_) = ep {
                parse_ip_strict(s).map_err(|_| Error::Endpoint(s.to_string()))?;
            }
            Ok(ep)
        };
        Ok(Flow::new(
            endpoint(&self.from)?,
            endpoint(&self.to)?,
            self.protocol,
            self.port,
        ))
    }
}

/// Parses a probe list: a YAML (or JSON) sequence of probes.
///
/// ```
/// let probes = k8snet_policy::parse_probes("
/// - {from: x/a, to: y/b, port: 80}
/// - {from: 203.0.113.7, to: y/b, port: 53, protocol: UDP}
/// ")?;
/// assert_eq!(probes.len(), 2);
/// assert_eq!(probes[0].protocol, k8snet_model::Protocol::Tcp);
/// # Ok::<(), k8snet_policy::Error>(())
/// ```
///
/// # Errors
/// [`Error::Probes`] with the parser's message (and position).
pub fn parse_probes(text: &str) -> Result<Vec<Probe>, Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_str::<Vec<Probe>>(text).map_err(|e| {
        // The first line carries the message and the position; the rest
        // is a rendered snippet.
        let msg = e.to_string();
        Error::Probes(msg.lines().next().unwrap_or_default().to_string())
    })
}

impl PolicySet {
    /// Evaluates a probe.
    ///
    /// # Errors
    /// [`Error::Endpoint`] for an endpoint that does not parse and
    /// [`Error::UnknownPod`] for a pod the set does not know (a typo is
    /// better reported than denied).
    pub fn probe(&self, probe: &Probe) -> Result<ProbeResult, Error> {
        let flow = probe.flow()?;
        for ep in [&flow.src, &flow.dst] {
            if let Endpoint::Pod(p) = ep
                && !self.contains_pod(p)
            {
                return Err(Error::UnknownPod(p.to_string()));
            }
        }
        let e = self.explain(&flow);
        Ok(ProbeResult {
            from: probe.from.clone(),
            to: probe.to.clone(),
            port: probe.port,
            protocol: probe.protocol,
            verdict: e.verdict(),
            reason: e.reason(),
        })
    }
}
