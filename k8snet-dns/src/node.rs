//! Reading the pre-encoded blobs (see [`crate::encode`]) and the shards that
//! hold them. Every read is bounds-checked: a malformed blob reads as
//! absent, never as a panic.

/// One shard of the zone: node blobs in one buffer, indexed by an open
/// addressing table (linear probing) on the name's hash.
///
/// A slot packs the blob's offset (plus one, so that 0 means empty) in its
/// high half and the low half of the name's hash in its low half, and the
/// table is at most three quarters full: a lookup usually reads one cache
/// line of slots and then the blob, where a binary search over sorted
/// hashes touched several lines and a separate offset array one more.
/// The lookup runs for every query, and its memory stalls were the
/// largest user-space cost of serving (callgrind/perf, BENCHMARKS.md).
#[derive(Debug, Default)]
pub(crate) struct Shard {
    slots: Box<[u64]>,
    data: Box<[u8]>,
    len: usize,
}

impl Shard {
    /// The node for `key` (a wire name, in any case) with hash `hash`.
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<Node<'_>> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = hash as usize & mask;
        // Bounded: a full table (never built) cannot loop forever.
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            if slot as u32 == hash as u32
                && let Some(node) = self.node_at(slot)
                && crate::name::eq_ignore_case(node.key(), key)
            {
                return Some(node);
            }
            i = (i + 1) & mask;
        }
        None
    }

    fn node_at(&self, slot: u64) -> Option<Node<'_>> {
        let off = ((slot >> 32) as usize).checked_sub(1)?;
        let len = u32::from_le_bytes(self.data.get(off..off + 4)?.try_into().ok()?) as usize;
        Some(Node {
            b: self.data.get(off..off + len)?,
        })
    }

    /// Every node, in table order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != 0)
            .filter_map(|&s| self.node_at(s))
    }

    /// The number of names.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * 8 + self.data.len()
    }
}

/// Collects node blobs, then indexes them into a [`Shard`].
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

    /// Indexes and freezes.
    pub(crate) fn finish(self) -> Shard {
        let len = self.entries.len();
        if len == 0 {
            return Shard {
                slots: Box::new([]),
                data: self.data.into_boxed_slice(),
                len,
            };
        }
        // At most 3/4 full, so every probe sequence meets an empty slot.
        let size = (len + len / 3 + 1).next_power_of_two();
        let mask = size - 1;
        let mut slots = vec![0u64; size];
        for &(hash, off) in &self.entries {
            let mut i = hash as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (u64::from(off) + 1) << 32 | u64::from(hash as u32);
        }
        Shard {
            slots: slots.into_boxed_slice(),
            data: self.data.into_boxed_slice(),
            len,
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
        assert_eq!(shard.nodes().count(), 50);
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
        // Names whose hashes collide in the table (and even in the low
        // half the slots keep) are told apart by their keys.
        let mut b = ShardBuilder::default();
        let keys: Vec<WireName> = (0..20)
            .map(|i| WireName::from_text(&format!("c{i}.cluster.local")).unwrap())
            .collect();
        for key in &keys {
            let mut blob = Vec::new();
            encode_node(&NodeSpec::empty(key.clone()), &mut blob);
            b.push(7, &blob);
        }
        let shard = b.finish();
        for key in &keys {
            assert_eq!(shard.find(7, key.as_bytes()).unwrap().key(), key.as_bytes());
        }
        assert!(shard.find(7, b"\x01x\x00").is_none());
        assert!(ShardBuilder::default().finish().find(7, b"\x00").is_none());
    }
}
