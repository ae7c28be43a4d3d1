//! From (current state, next state) to the smallest [`Batch`] of operations
//! that turns one into the other, and the batch itself: plain data that
//! prints as an nft script and that [`Batch::apply_to`] can play on an
//! in-memory table (the kernel's rules, for tests without root).
//!
//! Rules are replaced a chain at a time: a chain whose rules changed is
//! flushed and its rules added again, in the same transaction, so packets
//! see either the old chain or the new one. Unchanged chains are not
//! touched. Set and map elements are added and deleted one by one; a set
//! whose definition changed is deleted and created again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::error::{Error, Object, Result};
use crate::model::{BaseChain, Chain, Element, Family, MapValue, Rule, Set, Table};
use crate::render::{base_line, element_text, rule_text, set_body};
use crate::types::{Key, padded_len};
use crate::validate::validate;

/// Estimated netlink bytes of element data per message. The kernel's
/// attribute length is 16 bits, so one message must stay under 64 KiB.
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;

/// One step of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create the table (nothing if it exists).
    AddTable,
    /// Delete the table and everything in it.
    DeleteTable,
    /// Create a chain, or update an existing base chain's policy.
    AddChain {
        /// The chain.
        name: String,
        /// Its hook, for base chains.
        base: Option<BaseChain>,
    },
    /// Delete a chain (it must be empty and unreferenced).
    DeleteChain {
        /// The chain.
        name: String,
    },
    /// Delete every rule of a chain.
    FlushChain {
        /// The chain.
        name: String,
    },
    /// Append a rule to a chain.
    AddRule {
        /// The chain.
        chain: String,
        /// The rule's position in the chain once the batch is applied (from
        /// 1), for error messages.
        index: usize,
        /// The rule.
        rule: Rule,
    },
    /// Create a set or map (without elements).
    AddSet {
        /// The set.
        name: String,
        /// Its definition; `elements` is empty.
        set: Set,
    },
    /// Delete a set or map (no rule may use it).
    DeleteSet {
        /// The set.
        name: String,
    },
    /// Add elements (one netlink message, bounded in size).
    AddElements {
        /// The set.
        set: String,
        /// The elements.
        elements: Vec<(Key, Element)>,
    },
    /// Delete elements (one netlink message, bounded in size).
    DeleteElements {
        /// The set.
        set: String,
        /// The elements (the range end matters for intervals; values do not).
        elements: Vec<(Key, Element)>,
    },
}

/// An ordered list of operations on one table, applied as one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The table's family.
    pub family: Family,
    /// The table's name.
    pub table: String,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The definitions of the sets the operations touch (to encode their
    /// elements), by name: the new definition where the batch creates it.
    pub(crate) sets: BTreeMap<String, Set>,
}

impl Batch {
    /// An empty batch for the table.
    pub fn new(family: Family, table: &str) -> Self {
        Self {
            family,
            table: table.to_owned(),
            ops: Vec::new(),
            sets: BTreeMap::new(),
        }
    }

    /// A batch that deletes the whole table.
    pub fn delete_table(family: Family, table: &str) -> Self {
        let mut b = Self::new(family, table);
        b.ops.push(Op::DeleteTable);
        b
    }

    /// Appends an operation. Elements of a set this batch does not create
    /// need the set's definition: give it with [`Batch::know_set`].
    pub fn push(&mut self, op: Op) {
        if let Op::AddSet { name, set } = &op {
            self.sets.insert(name.clone(), set.spec());
        }
        self.ops.push(op);
    }

    /// Records the definition of a set that element operations use.
    pub fn know_set(&mut self, name: &str, set: &Set) {
        self.sets.insert(name.to_owned(), set.spec());
    }

    /// The definition of a set element operations refer to.
    #[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_spec(&self, name: &str) -> Option<&Set> {
        self.sets.get(name)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of set elements added or deleted.
    pub fn element_count(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::AddElements { elements, .. } | Op::DeleteElements { elements, .. } => {
                    elements.len()
                }
                _ => 0,
            })
            .sum()
    }
}

fn chunked(set: &Set, elements: Vec<(Key, Element)>) -> Vec<Vec<(Key, Element)>> {
    let key = padded_len(&set.key);
    let per = 64 + 2 * (key + 8);
    let mut out: Vec<Vec<(Key, Element)>> = Vec::new();
    let mut bytes = 0;
    for (k, e) in elements {
        let size = per
            + match &e.value {
                Some(MapValue::Verdict(v)) => 32 + v.target().map_or(0, str::len),
                Some(MapValue::Data(d)) => 8 + 4 * d.0.len() + 16,
                None => 0,
            };
        match out.last_mut() {
            Some(chunk) if bytes + size <= ELEMENT_BYTES_PER_MESSAGE => chunk.push((k, e)),
            _ => {
                out.push(vec![(k, e)]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
}

/// Whether a chain (its hook) must be deleted and created again to change.
fn needs_recreate(old: &Chain, new: &Chain) -> bool {
    match (&old.base, &new.base) {
        (None, None) => false,
        (Some(a), Some(b)) => (a.kind, a.hook, a.priority) != (b.kind, b.hook, b.priority),
        _ => true,
    }
}

/// The smallest batch that turns `old` (what the kernel holds, `None` if the
/// table does not exist) into `new`. Full resync and partial update are the
/// same call: pass what [`crate::Nft::read_table`] returned, or the state
/// last applied.
///
/// Elements of `dynamic` sets that are in `old` but not in `new` are left
/// alone: the packet path owns them.
///
/// # Errors
///
/// [`Error::Invalid`] if `new` is not valid (see [`crate::validate`]) or
/// names a different table than `old`.
pub fn diff(old: Option<&Table>, new: &Table) -> Result<Batch> {
    validate(new)?;
    let mut b = Batch::new(new.family, &new.name);
    for (name, set) in &new.sets {
        b.know_set(name, set);
    }
    let empty = Table::new(new.family, &new.name);
    let old = match old {
        Some(o) if o.name != new.name || o.family != new.family => {
            return Err(Error::invalid(
                Object::Table(new.name.clone()),
                format!("cannot diff against table {} {}", o.family, o.name),
            ));
        }
        Some(o) => o,
        None => {
            b.ops.push(Op::AddTable);
            &empty
        }
    };
    for (name, set) in &old.sets {
        b.sets.entry(name.clone()).or_insert_with(|| set.spec());
    }

    // Sets that go away or change definition; rules using them must go first.
    let dead_sets: BTreeSet<&String> = old
        .sets
        .iter()
        .filter(|(n, s)| new.sets.get(*n).is_none_or(|ns| ns.spec() != s.spec()))
        .map(|(n, _)| n)
        .collect();
    let uses_dead_set = |c: &Chain| {
        c.rules.iter().any(|r| {
            r.exprs.iter().any(|e| {
                e.set_refs()
                    .iter()
                    .any(|s| dead_sets.contains(&s.to_string()))
            })
        })
    };

    let mut flush = BTreeSet::new();
    let mut delete_chains = BTreeSet::new();
    let mut add_chains = BTreeSet::new();
    let mut fill = BTreeSet::new();
    for (name, oc) in &old.chains {
        match new.chains.get(name) {
            None => {
                flush.insert(name);
                delete_chains.insert(name);
            }
            Some(nc) if needs_recreate(oc, nc) => {
                flush.insert(name);
                delete_chains.insert(name);
                add_chains.insert(name);
                fill.insert(name);
            }
            Some(nc) => {
                if oc.base != nc.base {
                    add_chains.insert(name); // a policy change is an update
                }
                if oc.rules != nc.rules || uses_dead_set(oc) {
                    flush.insert(name);
                    fill.insert(name);
                }
            }
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            add_chains.insert(name);
            fill.insert(name);
        }
    }

    for name in &flush {
        if old.chains.get(*name).is_some_and(|c| !c.rules.is_empty()) {
            b.ops.push(Op::FlushChain {
                name: (*name).clone(),
            });
        }
    }
    // Elements of surviving sets: deletions (also of changed elements).
    let mut additions = Vec::new();
    for (name, ns) in &new.sets {
        let os = old.sets.get(name).filter(|os| os.spec() == ns.spec());
        let mut del = Vec::new();
        let mut add = Vec::new();
        if let Some(os) = os {
            for (k, e) in &os.elements {
                match ns.elements.get(k) {
                    Some(ne) if ne == e => {}
                    Some(_) => del.push((k.clone(), e.clone())),
                    None if ns.flags.dynamic => {}
                    None => del.push((k.clone(), e.clone())),
                }
            }
        }
        for (k, e) in &ns.elements {
            if os.and_then(|os| os.elements.get(k)) != Some(e) {
                add.push((k.clone(), e.clone()));
            }
        }
        for elements in chunked(ns, del) {
            b.ops.push(Op::DeleteElements {
                set: name.clone(),
                elements,
            });
        }
        additions.push((name, ns, add));
    }
    // Sets before chains: a dead verdict map's elements may still jump to
    // a chain that goes away.
    for name in &dead_sets {
        b.ops.push(Op::DeleteSet {
            name: (*name).clone(),
        });
    }
    for name in &delete_chains {
        b.ops.push(Op::DeleteChain {
            name: (*name).clone(),
        });
    }
    for name in &add_chains {
        b.ops.push(Op::AddChain {
            name: (*name).clone(),
            base: new.chains[*name].base,
        });
    }
    for (name, ns) in &new.sets {
        if old.sets.get(name).is_none_or(|os| os.spec() != ns.spec()) {
            b.ops.push(Op::AddSet {
                name: name.clone(),
                set: ns.spec(),
            });
        }
    }
    for (name, ns, add) in additions {
        for elements in chunked(ns, add) {
            b.ops.push(Op::AddElements {
                set: name.clone(),
                elements,
            });
        }
    }
    for name in &fill {
        for (i, rule) in new.chains[*name].rules.iter().enumerate() {
            b.ops.push(Op::AddRule {
                chain: (*name).clone(),
                index: i + 1,
                rule: rule.clone(),
            });
        }
    }
    Ok(b)
}

impl fmt::Display for Batch {
    /// The batch as an nft script (`add rule inet t c ...`, one command a
    /// line), for dry runs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = format!("{} {}", self.family, self.table);
        let one_line = |set: &Set| {
            set_body(set, "", false)
                .lines()
                .collect::<Vec<_>>()
                .join("; ")
        };
        for op in &self.ops {
            match op {
                Op::AddTable => writeln!(f, "add table {t}")?,
                Op::DeleteTable => writeln!(f, "delete table {t}")?,
                Op::AddChain { name, base: None } => writeln!(f, "add chain {t} {name}")?,
                Op::AddChain {
                    name,
                    base: Some(base),
                } => writeln!(f, "add chain {t} {name} {{ {} }}", base_line(base))?,
                Op::DeleteChain { name } => writeln!(f, "delete chain {t} {name}")?,
                Op::FlushChain { name } => writeln!(f, "flush chain {t} {name}")?,
                Op::AddRule { chain, rule, .. } => {
                    writeln!(f, "add rule {t} {chain} {}", rule_text(rule))?
                }
                Op::AddSet { name, set } => {
                    let kind = if set.is_map() { "map" } else { "set" };
                    writeln!(f, "add {kind} {t} {name} {{ {}; }}", one_line(set))?
                }
                Op::DeleteSet { name } => {
                    let kind = match self.sets.get(name) {
                        Some(s) if s.is_map() => "map",
                        _ => "set",
                    };
                    writeln!(f, "delete {kind} {t} {name}")?
                }
                Op::AddElements { set, elements } | Op::DeleteElements { set, elements } => {
                    let verb = if matches!(op, Op::AddElements { .. }) {
                        "add"
                    } else {
                        "delete"
                    };
                    let spec = self
                        .sets
                        .get(set)
                        .cloned()
                        .unwrap_or_else(|| Set::new(Vec::new()));
                    let items: Vec<String> = elements
                        .iter()
                        .map(|(k, e)| {
                            let e = if verb == "delete" {
                                Element {
                                    end: e.end.clone(),
                                    ..Element::default()
                                }
                            } else {
                                e.clone()
                            };
                            element_text(&spec, k, &e)
                        })
                        .collect();
                    writeln!(f, "{verb} element {t} {set} {{ {} }}", items.join(", "))?
                }
            }
        }
        Ok(())
    }
}
