//! Plays a [`Batch`] on an in-memory table with the kernel's rules (what
//! must exist, what may not be referenced when deleted), all or nothing.

use crate::diff::{Batch, Op};
use crate::error::{Error, Object, Result};
use crate::model::{Chain, Table};

fn refuse(object: Object, reason: &str) -> Error {
    Error::invalid(object, reason)
}

/// Whether anything in `t` jumps to chain `name`.
fn chain_in_use(t: &Table, name: &str) -> bool {
    let in_rules = t
        .chains
        .values()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.exprs)
        .any(|e| e.chain_refs().contains(&name));
    let in_maps = t
        .sets
        .values()
        .flat_map(|s| s.elements.values())
        .any(|e| matches!(&e.value, Some(crate::model::MapValue::Verdict(v)) if v.target() == Some(name)));
    in_rules || in_maps
}

fn set_in_use(t: &Table, name: &str) -> bool {
    t.chains
        .values()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.exprs)
        .any(|e| e.set_refs().contains(&name))
}

impl Batch {
    /// Applies the batch to `state` (`None`: the table does not exist) the
    /// way the kernel would, all or nothing, and returns the new state.
    /// Tests use it to check batches without root.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the first operation the kernel would refuse
    /// (a missing or still referenced object); `state` is not changed.
    pub fn apply_to(&self, state: Option<&Table>) -> Result<Option<Table>> {
        let mut cur = state.cloned();
        for op in &self.ops {
            step(self, &mut cur, op)?;
        }
        Ok(cur)
    }
}

fn step(b: &Batch, cur: &mut Option<Table>, op: &Op) -> Result<()> {
    if let Op::AddTable = op {
        if cur.is_none() {
            *cur = Some(Table::new(b.family, &b.table));
        }
        return Ok(());
    }
    let Some(t) = cur.as_mut() else {
        return Err(refuse(
            Object::Table(b.table.clone()),
            "the table does not exist",
        ));
    };
    match op {
        Op::AddTable => {}
        Op::DeleteTable => *cur = None,
        Op::AddChain { name, base } => match t.chains.get_mut(name) {
            None => {
                let chain = Chain {
                    base: *base,
                    rules: Vec::new(),
                };
                t.chains.insert(name.clone(), chain);
            }
            Some(c) => match (&mut c.base, base) {
                (Some(old), Some(new))
                    if (old.kind, old.hook, old.priority) == (new.kind, new.hook, new.priority) =>
                {
                    old.policy = new.policy;
                }
                (None, None) => {}
                _ => {
                    return Err(refuse(
                        Object::Chain(name.clone()),
                        "exists with another hook",
                    ));
                }
            },
        },
        Op::DeleteChain { name } => {
            if !t.chains.contains_key(name) {
                return Err(refuse(Object::Chain(name.clone()), "does not exist"));
            }
            let rules = t
                .chains
                .get(name)
                .map(|c| c.rules.clone())
                .unwrap_or_default();
            // The kernel deletes the chain's own rules with it.
            if let Some(c) = t.chains.get_mut(name) {
                c.rules.clear();
            }
            if chain_in_use(t, name) {
                if let Some(c) = t.chains.get_mut(name) {
                    c.rules = rules;
                }
                return Err(refuse(Object::Chain(name.clone()), "is still referenced"));
            }
            t.chains.remove(name);
        }
        Op::FlushChain { name } => match t.chains.get_mut(name) {
            Some(c) => c.rules.clear(),
            None => return Err(refuse(Object::Chain(name.clone()), "does not exist")),
        },
        Op::AddRule { chain, index, rule } => {
            let object = Object::Rule {
                chain: chain.clone(),
                index: *index,
            };
            for target in rule.exprs.iter().flat_map(|e| e.chain_refs()) {
                if !t.chains.contains_key(target) {
                    return Err(refuse(object, "jump target does not exist"));
                }
            }
            for set in rule.exprs.iter().flat_map(|e| e.set_refs()) {
                if !t.sets.contains_key(set) {
                    return Err(refuse(object, "set does not exist"));
                }
            }
            match t.chains.get_mut(chain) {
                Some(c) => c.rules.push(rule.clone()),
                None => return Err(refuse(object, "chain does not exist")),
            }
        }
        Op::AddSet { name, set } => match t.sets.get(name) {
            Some(s) if s.spec() == *set => {}
            Some(_) => {
                return Err(refuse(
                    Object::Set(name.clone()),
                    "exists with another type",
                ));
            }
            None => {
                t.sets.insert(name.clone(), set.spec());
            }
        },
        Op::DeleteSet { name } => {
            if !t.sets.contains_key(name) {
                return Err(refuse(Object::Set(name.clone()), "does not exist"));
            }
            if set_in_use(t, name) {
                return Err(refuse(Object::Set(name.clone()), "is still used by a rule"));
            }
            t.sets.remove(name);
        }
        Op::AddElements { set, elements } => {
            let missing_chain = elements.iter().find_map(|(k, e)| match &e.value {
                Some(crate::model::MapValue::Verdict(v)) => v
                    .target()
                    .filter(|c| !t.chains.contains_key(*c))
                    .map(|_| k.clone()),
                _ => None,
            });
            let Some(s) = t.sets.get_mut(set) else {
                return Err(refuse(Object::Set(set.clone()), "does not exist"));
            };
            for (k, e) in elements {
                let object = || Object::Elements {
                    set: set.clone(),
                    first: k.to_string(),
                    count: 1,
                };
                if missing_chain.as_ref() == Some(k) {
                    return Err(refuse(object(), "jump target does not exist"));
                }
                match s.elements.get(k) {
                    Some(old) if old != e => {
                        return Err(refuse(object(), "exists with another value"));
                    }
                    _ => {
                        s.elements.insert(k.clone(), e.clone());
                    }
                }
            }
        }
        Op::DeleteElements { set, elements } => {
            let Some(s) = t.sets.get_mut(set) else {
                return Err(refuse(Object::Set(set.clone()), "does not exist"));
            };
            for (k, _) in elements {
                if s.elements.remove(k).is_none() {
                    let object = Object::Elements {
                        set: set.clone(),
                        first: k.to_string(),
                        count: 1,
                    };
                    return Err(refuse(object, "does not exist"));
                }
            }
        }
    }
    Ok(())
}
