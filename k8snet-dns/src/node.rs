//! Reading the pre-encoded blobs (see [`crate::encode`]) and the shards that
//! hold them. Every read is bounds-checked: a malformed blob reads as
//! absent, never as a panic.

/// One shard of the zone: node blobs in one buffer, indexed by the full
/// name hash (sorted, for binary search).
#[derive(Debug, Default)]
pub(crate) struct Shard {
    hashes: Box<[u64]>,
    offsets: Box<[u32]>,
    data: Box<[u8]>,
}

impl Shard {
    /// The node for `key` (a wire name, in any case) with hash `hash`.
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<Node<'_>> {
        let mut i = self.hashes.partition_point(|&h| h < hash);
        while self.hashes.get(i) == Some(&hash) {
            if let Some(node) = self.node_at(i)
                && node.key().eq_ignore_ascii_case(key)
            {
                return Some(node);
            }
            i += 1;
        }
        None
    }

    fn node_at(&self, i: usize) -> Option<Node<'_>> {
        let off = *self.offsets.get(i)? as usize;
        let len = u32::from_le_bytes(self.data.get(off..off + 4)?.try_into().ok()?) as usize;
        Some(Node {
            b: self.data.get(off..off + len)?,
        })
    }

    /// Every node with its hash, in hash order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (u64, Node<'_>)> + '_ {
        (0..self.hashes.len()).filter_map(|i| Some((self.hashes[i], self.node_at(i)?)))
    }

    /// The number of names.
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.hashes.len() * 8 + self.offsets.len() * 4 + self.data.len()
    }
}

/// Collects node blobs, then sorts them into a [`Shard`].
#[derive(Debug, Default)]
pub(crate) struct ShardBuilder {
    entries: Vec<(u64, u32)>,
    data: Vec<u8>,
}

impl ShardBuilder {
    /// Appends an encoded node blob.
    pub(crate) fn push(&mut self, hash: u64, blob: &[u8]) {
        self.entries.push((hash, self.data.len() as u32));
        self.data.extend_from_slice(blob);
    }

    /// Encodes `spec` and appends it.
    pub(crate) fn push_spec(&mut self, hash: u64, spec: &crate::encode::NodeSpec) {
        self.entries.push((hash, self.data.len() as u32));
        crate::encode::encode_node(spec, &mut self.data);
    }

    /// Sorts and freezes.
    pub(crate) fn finish(mut self) -> Shard {
        self.entries.sort_unstable_by_key(|&(h, _)| h);
        Shard {
            hashes: self.entries.iter().map(|&(h, _)| h).collect(),
            offsets: self.entries.iter().map(|&(_, o)| o).collect(),
            data: self.data.into_boxed_slice(),
        }
    }
}

/// A node blob.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    b: &'a [u8],
}

impl<'a> Node<'a> {
    /// The whole blob (to copy it into another shard).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.b
    }

    pub(crate) fn flags(&self) -> u8 {
        self.b.get(4).copied().unwrap_or(0)
    }

    pub(crate) fn key(&self) -> &'a [u8] {
        let len = usize::from(self.b.get(5).copied().unwrap_or(0));
        self.b.get(6..6 + len).unwrap_or(&[])
    }

    /// The rrsets, in the order they were encoded.
    pub(crate) fn rrsets(&self) -> impl Iterator<Item = Rrset<'a>> + 'a {
        let b = self.b;
        let start = 6 + usize::from(b.get(5).copied().unwrap_or(0));
        let count = b.get(start).copied().unwrap_or(0);
        let mut pos = start + 1;
        (0..count).map_while(move |_| {
            let (set, next) = Rrset::read(b, pos)?;
            pos = next;
            Some(set)
        })
    }

    /// The rrset answering `qtype`.
    pub(crate) fn rrset(&self, qtype: u16) -> Option<Rrset<'a>> {
        self.rrsets().find(|s| s.qtype == qtype)
    }
}

/// One pre-encoded answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rrset<'a> {
    pub(crate) qtype: u16,
    pub(crate) answers: u16,
    pub(crate) authorities: u16,
    pub(crate) additionals: u16,
    ends: &'a [u8],
    pub(crate) body: &'a [u8],
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl<'a> Rrset<'a> {
    fn read(b: &'a [u8], at: usize) -> Option<(Self, usize)> {
        let qtype = le16(b, at)?;
        let answers = le16(b, at + 2)?;
        let authorities = le16(b, at + 4)?;
        let additionals = le16(b, at + 6)?;
        let records = usize::from(le16(b, at + 8)?);
        let body_len = usize::from(le16(b, at + 10)?);
        let ends_at = at + 12;
        let body_at = ends_at + records * 2;
        let set = Self {
            qtype,
            answers,
            authorities,
            additionals,
            ends: b.get(ends_at..body_at)?,
            body: b.get(body_at..body_at + body_len)?,
        };
        Some((set, body_at + body_len))
    }

    /// Where record `i` ends in the body (0 for "before the first").
    pub(crate) fn end_of(&self, records: usize) -> usize {
        if records == 0 {
            return 0;
        }
        le16(self.ends, (records - 1) * 2).map_or(0, usize::from)
    }

    /// The answer records as (type, rdata).
    pub(crate) fn answer_records(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        let body = &self.body[..self.end_of(usize::from(self.answers)).min(self.body.len())];
        records(body)
    }
}

/// Walks the records of a body: (type, rdata). Names are skipped, whether
/// literal or compressed.
pub(crate) fn records(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        pos = skip_name(body, pos)?;
        let t = u16::from_be_bytes([*body.get(pos)?, *body.get(pos + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([
            *body.get(pos + 8)?,
            *body.get(pos + 9)?,
        ]));
        let rdata = body.get(pos + 10..pos + 10 + rdlen)?;
        pos += 10 + rdlen;
        Some((t, rdata))
    })
}

/// The position after the name at `pos`.
pub(crate) fn skip_name(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *b.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0xC0 => return Some(pos + 2),
            l if l <= 63 => pos += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{NodeSpec, RData, Rr, encode_node, rtype};
    use crate::name::WireName;

    #[test]
    fn shard_finds_nodes_and_reads_rrsets() {
        let mut b = ShardBuilder::default();
        let mut keys = Vec::new();
        for i in 0..50 {
            let key = WireName::from_text(&format!("s{i}.ns.svc.cluster.local")).unwrap();
            let mut spec = NodeSpec::empty(key.clone());
            spec.push_answer(Rr {
                owner: key.clone(),
                ttl: 5,
                data: RData::A(std::net::Ipv4Addr::new(198, 19, 0, i)),
            });
            let mut blob = Vec::new();
            encode_node(&spec, &mut blob);
            b.push(crate::name::hash(key.as_bytes()), &blob);
            keys.push(key);
        }
        let shard = b.finish();
        assert_eq!(shard.len(), 50);
        for (i, key) in keys.iter().enumerate() {
            let node = shard
                .find(crate::name::hash(key.as_bytes()), key.as_bytes())
                .unwrap();
            assert_eq!(node.key(), key.as_bytes());
            let set = node.rrset(rtype::A).unwrap();
            let recs: Vec<_> = set.answer_records().collect();
            assert_eq!(recs, vec![(rtype::A, &[198, 19, 0, i as u8][..])]);
            assert!(node.rrset(rtype::AAAA).is_none());
        }
        assert!(shard.find(1, b"\x01x\x00").is_none());
    }
}
