//! Why a flow got its verdict: the deciding tier, policy and rule of each
//! direction, in the terms np-guard's `--explain` and policy-assistant's
//! walkthrough use.

use std::fmt;

use k8snet_model::{IpFamily, Kind, NsName, ObjectRef, PolicyType};

use crate::flow::{Flow, Verdict};

/// The policy layers, in evaluation order. Default allow follows them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Tier {
    /// AdminNetworkPolicy and ClusterNetworkPolicy `tier: Admin`.
    Admin,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// BaselineAdminNetworkPolicy and ClusterNetworkPolicy `tier: Baseline`.
    Baseline,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Admin => "Admin",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::Baseline => "Baseline",
        })
    }
}

/// What a rule does with matching traffic (NetworkPolicy rules always allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Allow (ClusterNetworkPolicy spells it `Accept`).
    Allow,
    /// Deny.
    Deny,
    /// Skip the rest of the tier; the next tier decides.
    Pass,
}

/// A rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RuleRef {
    /// The policy (`NetworkPolicy ns/name`, `AdminNetworkPolicy name`, …).
    pub policy: ObjectRef,
    /// Its tier.
    pub tier: Tier,
    /// Ingress or egress.
    pub direction: PolicyType,
    /// The rule's index in that direction's list.
    pub index: usize,
    /// The rule's name (admin tiers).
    pub name: Option<String>,
    /// What the rule does.
    pub action: Action,
}

impl fmt::Display for RuleRef {
    /// `AdminNetworkPolicy allow-dns rule 0 "dns" (Allow)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.policy, self.index)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        let cnp = self.policy.kind == Kind::ClusterNetworkPolicy;
        let action = match self.action {
            Action::Allow if cnp => "Accept",
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        };
        write!(f, " ({action})")
    }
}

/// Why one direction of a flow got its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A rule matched and decided (Allow/Accept or Deny).
    Rule(RuleRef),
    /// NetworkPolicies isolate the pod in this direction and none of their
    /// rules admits the flow.
    Isolated {
        /// The isolating policies, by name.
        policies: Vec<ObjectRef>,
    },
    /// No tier decided: allowed by default.
    Default,
    /// This side of the flow is not a pod subject to policy (an address
    /// outside the pod network, a node, a host-network pod).
    NotAPod,
    /// Ingress from the pod's own node (kubelet probes): always allowed.
    NodeLocal,
    /// A pod's traffic to itself ([`SelfTraffic::Allow`](crate::SelfTraffic)).
    SelfTraffic,
    /// The flow names a pod the policy set does not know (or a finished one).
    UnknownPod(NsName),
}

/// The verdict and reason of one direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Decision {
    /// The direction.
    pub direction: PolicyType,
    /// Allow or deny.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The Admin-tier `Pass` rule that sent evaluation on, if one did.
    pub passed: Option<RuleRef>,
}

impl Decision {
    /// The tier that decided, or `None` when none did (default allow and the
    /// exemptions).
    pub fn tier(&self) -> Option<Tier> {
        match &self.reason {
            Reason::Rule(r) => Some(r.tier),
            Reason::Isolated { .. } => Some(Tier::NetworkPolicy),
            _ => None,
        }
    }
}

impl fmt::Display for Decision {
    /// The reason alone, without the flow: `isolated by NetworkPolicy x/p`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.passed {
            write!(f, "{p}, then ")?;
        }
        match &self.reason {
            Reason::Rule(r) => r.fmt(f),
            Reason::Isolated { policies } => {
                f.write_str("isolated by ")?;
                for (i, p) in policies.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    p.fmt(f)?;
                }
                Ok(())
            }
            Reason::Default => f.write_str("no policy applies (default allow)"),
            Reason::NotAPod => f.write_str("not a pod (no policy applies)"),
            Reason::NodeLocal => f.write_str("from the pod's own node (always allowed)"),
            Reason::SelfTraffic => f.write_str("a pod's traffic to itself (always allowed)"),
            Reason::UnknownPod(p) => write!(f, "unknown pod {p}"),
        }
    }
}

/// The verdict of a flow with the reason of each direction.
///
/// A connection needs the source's egress AND the destination's ingress;
/// both directions are always evaluated here, so a flow denied both ways
/// shows both reasons.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Explanation {
    /// The flow.
    pub flow: Flow,
    /// The source pod's egress.
    pub egress: Decision,
    /// The destination pod's ingress.
    pub ingress: Decision,
    /// The pod the source is, when the flow gave its address.
    pub src_pod: Option<NsName>,
    /// The pod the destination is, when the flow gave its address.
    pub dst_pod: Option<NsName>,
    /// The address family the decisions above are for, when it matters: a
    /// flow between two dual-stack pods named by name is evaluated over
    /// each family (a connection uses one end to end), and when the two
    /// are decided differently this is the family shown — the one that
    /// allows, or IPv4 when neither does. `None` when the families agree
    /// or only one applies.
    pub family: Option<IpFamily>,
    /// With [`Explanation::family`]: the same flow explained over the
    /// other family.
    pub other: Option<Box<Self>>,
}

impl Explanation {
    /// Allow when both directions allow.
    pub fn verdict(&self) -> Verdict {
        if self.egress.verdict.is_allow() && self.ingress.verdict.is_allow() {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    /// The reason alone, as the `reason` of `k8snet policy eval`: the
    /// [`Display`](fmt::Display) text without its `allow: `/`deny: ` prefix.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, rest)) => rest.to_string(),
            None => text,
        }
    }

    fn write_direction(&self, d: &Decision, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let egress = d.direction == PolicyType::Egress;
        let (side, pod, other, word, prep) = if egress {
            let s = &self.flow;
            (&s.src, &self.src_pod, &s.dst, "egress from", "to")
        } else {
            let s = &self.flow;
            (&s.dst, &self.dst_pod, &s.src, "ingress to", "from")
        };
        match pod {
            Some(p) => write!(f, "{word} {p} ({side}): {d}")?,
            None => write!(f, "{word} {side}: {d}")?,
        }
        if matches!(d.reason, Reason::Isolated { .. }) {
            let flow = &self.flow;
            write!(
                f,
                "; no rule admits {} {} {prep} {other}",
                flow.protocol, flow.port
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Explanation {
    /// `deny: ingress to shop/web: isolated by NetworkPolicy shop/web-ingress;
    /// no rule admits TCP 5432 from shop/api`, or for an allowed flow every
    /// direction that involves a pod: `allow: egress from x/a: AdminNetworkPolicy
    /// allow-dns rule 0 (Allow); ingress to kube-system/dns: no policy applies
    /// (default allow)`. When the address family matters, the reasons are
    /// prefixed with it: `allow: over IPv6: …`, and a flow denied over both
    /// families gives both: `deny: over IPv4: …; over IPv6: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = self.verdict();
        write!(f, "{verdict}: ")?;
        self.write_reasons(f)?;
        if verdict == Verdict::Deny
            && let Some(other) = &self.other
        {
            f.write_str("; ")?;
            other.write_reasons(f)?;
        }
        Ok(())
    }
}

impl Explanation {
    /// `over IPv4: ` or `over IPv6: ` when the family is named, else empty.
    pub(crate) fn family_prefix(&self) -> &'static str {
        match self.family {
            Some(IpFamily::IPv6) => "over IPv6: ",
            Some(_) => "over IPv4: ",
            None => "",
        }
    }

    /// The reasons of this explanation's own family (prefixed with it, when
    /// it is named).
    fn write_reasons(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = self.verdict();
        f.write_str(self.family_prefix())?;
        let shown: Vec<&Decision> = [&self.egress, &self.ingress]
            .into_iter()
            .filter(|d| match verdict {
                Verdict::Deny => d.verdict == Verdict::Deny,
                _ => d.reason != Reason::NotAPod,
            })
            .collect();
        // Unknown pods and self traffic are one reason for the whole flow.
        if let Some(d) = shown.first()
            && matches!(d.reason, Reason::UnknownPod(_) | Reason::SelfTraffic)
        {
            return fmt::Display::fmt(d, f);
        }
        if shown.is_empty() {
            return f.write_str("no pod involved (no policy applies)");
        }
        for (i, d) in shown.into_iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            self.write_direction(d, f)?;
        }
        Ok(())
    }
}
