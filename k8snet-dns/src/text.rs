//! Text views of a zone, decoded with hickory-proto from the very bytes
//! the answer path serves: the record listing (`Display`), a dig-like
//! lookup, and a check that every stored answer decodes.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};

use crate::answer::{AnswerOutcome, Transport};
use crate::encode::FLAG_APEX;
use crate::name::to_text;
use crate::node::{Node, Rrset};
use crate::{Error, Zone};

/// One stored answer as a complete response message.
fn message_of(node: &Node<'_>, set: &Rrset<'_>) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0];
    for c in [1, set.answers, set.authorities, set.additionals] {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m.extend_from_slice(node.key());
    m.extend_from_slice(&set.qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(set.body);
    m
}

fn record_line(r: &Record, out: &mut String) {
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        r.data
    );
}

impl Zone {
    /// Decodes every stored answer with hickory-proto and checks its
    /// counts; returns the number of answers checked.
    ///
    /// # Errors
    /// [`Error::Message`] naming the first answer that does not decode.
    pub fn verify(&self) -> Result<usize, Error> {
        let mut checked = 0;
        for shard in self.shards.iter() {
            for node in shard.nodes() {
                for set in node.rrsets() {
                    let bytes = message_of(&node, &set);
                    let m = Message::from_vec(&bytes).map_err(|e| {
                        Error::Message(format!("{} type {}: {e}", to_text(node.key()), set.qtype))
                    })?;
                    if m.answers.len() != usize::from(set.answers)
                        || m.additionals.len() != usize::from(set.additionals)
                    {
                        return Err(Error::Message(format!(
                            "{} type {}: counts differ",
                            to_text(node.key()),
                            set.qtype
                        )));
                    }
                    checked += 1;
                }
            }
        }
        Ok(checked)
    }

    /// Answers `name`/`qtype` (e.g. `"web.shop.svc.cluster.local"`,
    /// `"A"`) as if over TCP and prints the reply the way `dig` does.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or [`Error::UnknownType`] for bad input.
    pub fn dig(&self, name: &str, qtype: &str) -> Result<String, Error> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let qname = Name::from_ascii(&fqdn).map_err(|_| Error::InvalidName(name.to_string()))?;
        let rtype = RecordType::from_str(&qtype.to_ascii_uppercase())
            .map_err(|_| Error::UnknownType(qtype.to_string()))?;
        let mut query = Message::new(0x1d1d, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(qname, rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(self.meta.config.udp_payload());
        query.set_edns(edns);
        let bytes = query.to_vec().map_err(|e| Error::Message(e.to_string()))?;
        let mut out = vec![0u8; 65_535];
        let len = match self.answer_with(&bytes, Transport::Tcp, &mut out) {
            AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => r.len,
            _ => return Err(Error::Message("the query was dropped".into())),
        };
        let reply = Message::from_vec(&out[..len]).map_err(|e| Error::Message(e.to_string()))?;
        Ok(dig_text(&reply))
    }
}

/// A reply in dig's layout.
pub(crate) fn dig_text(m: &Message) -> String {
    let md = &m.metadata;
    let mut s = String::new();
    let _ = writeln!(
        s,
        ";; ->>HEADER<<- opcode: QUERY, status: {}, id: {}",
        crate::Rcode::from_header_bits(u16::from(md.response_code) as u8),
        md.id
    );
    let mut flags = vec!["qr"];
    for (on, f) in [
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
    ] {
        if on {
            flags.push(f);
        }
    }
    let _ = writeln!(
        s,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags.join(" "),
        m.queries.len(),
        m.answers.len(),
        m.authorities.len(),
        m.additionals.len() + usize::from(m.edns.is_some())
    );
    let _ = writeln!(s, "\n;; QUESTION SECTION:");
    for q in &m.queries {
        let _ = writeln!(s, ";{}\t\t{}\t{}", q.name, q.query_class, q.query_type);
    }
    for (title, recs) in [
        ("ANSWER", &m.answers),
        ("AUTHORITY", &m.authorities),
        ("ADDITIONAL", &m.additionals),
    ] {
        if !recs.is_empty() {
            let _ = writeln!(s, "\n;; {title} SECTION:");
            for r in recs {
                record_line(r, &mut s);
            }
        }
    }
    s
}

/// Lists every record in zone-file form, sorted by name and type
/// (answers only: the additional records are listed at their own names).
/// Pod records, synthesized per query, are described by a comment.
impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<(String, String)> = Vec::new();
        for shard in self.shards.iter() {
            for node in shard.nodes() {
                let owner = to_text(node.key());
                let mut text = String::new();
                if node.flags() & FLAG_APEX != 0 {
                    let soa = self.dig(&owner, "SOA").unwrap_or_default();
                    for l in soa
                        .lines()
                        .skip_while(|l| !l.starts_with(";; ANSWER"))
                        .skip(1)
                    {
                        if !l.is_empty() {
                            let _ = writeln!(text, "{l}");
                        }
                    }
                }
                for set in node.rrsets() {
                    if let Ok(m) = Message::from_vec(&message_of(&node, &set)) {
                        for r in &m.answers {
                            record_line(r, &mut text);
                        }
                    }
                }
                lines.push((sort_key(&owner), text));
            }
        }
        lines.sort();
        writeln!(
            f,
            "; zone {} serial {}",
            to_text(self.meta.zone.as_bytes()),
            self.meta.serial
        )?;
        writeln!(
            f,
            "; pod records ({:?}) are synthesized per query",
            self.meta.config.pod_mode()
        )?;
        for (_, text) in lines {
            f.write_str(&text)?;
        }
        Ok(())
    }
}

/// Names sort by their labels from the root, like a zone file.
fn sort_key(owner: &str) -> String {
    owner
        .trim_end_matches('.')
        .split('.')
        .rev()
        .collect::<Vec<_>>()
        .join("\u{1}")
}
