//! Lowering one rule: register loads (with nft's implicit protocol
//! checks), comparisons, lookups and statements, and the anonymous sets the
//! rule needs, created in the same transaction.

use std::collections::BTreeSet;

use super::*;

/// Payload, meta, ct and fib loads of each field.
fn load(f: Field, dreg: u32) -> LowExpr {
    let payload = |base, offset, len| LowExpr::Payload {
        base,
        offset,
        len,
        dreg,
    };
    let meta = |key| LowExpr::Meta { key, dreg };
    match f {
        Field::IpSaddr => payload(1, 12, 4),
        Field::IpDaddr => payload(1, 16, 4),
        Field::Ip6Saddr => payload(1, 8, 16),
        Field::Ip6Daddr => payload(1, 24, 16),
        Field::TcpSport | Field::UdpSport | Field::ThSport => payload(2, 0, 2),
        Field::TcpDport | Field::UdpDport | Field::ThDport => payload(2, 2, 2),
        Field::MetaL4proto => meta(16),
        Field::MetaNfproto => meta(15),
        Field::MetaMark => meta(3),
        Field::MetaIifname => meta(6),
        Field::MetaOifname => meta(7),
        Field::CtMark => LowExpr::Ct { key: 3, dreg },
        // NFTA_FIB_F_DADDR (2) / NFTA_FIB_F_SADDR (1), NFT_FIB_RESULT_ADDRTYPE.
        Field::FibDaddrType => LowExpr::Fib {
            flags: 2,
            result: 3,
            dreg,
        },
        Field::FibSaddrType => LowExpr::Fib {
            flags: 1,
            result: 3,
            dreg,
        },
    }
}

/// Builds one rule's expressions (and anonymous sets it needs).
struct RuleLowerer<'a> {
    batch: &'a Batch,
    family: crate::model::Family,
    exprs: Vec<LowExpr>,
    deps: BTreeSet<(u32, u8)>,
    pre: Vec<Msg>,
    next_id: &'a mut u32,
}

impl RuleLowerer<'_> {
    fn push(&mut self, e: LowExpr) {
        self.exprs.push(e);
    }

    /// `meta <key> == value` once per rule (nfproto 15, l4proto 16).
    fn dep(&mut self, key: u32, value: u8) {
        if self.deps.insert((key, value)) {
            self.push(LowExpr::Meta {
                key,
                dreg: REG32_00,
            });
            self.push(LowExpr::Cmp {
                sreg: REG32_00,
                op: 0,
                data: vec![value],
            });
        }
    }

    fn deps_of(&mut self, fields: &[Field]) {
        let inet = self.family == crate::model::Family::Inet;
        for f in fields {
            match f {
                Field::IpSaddr | Field::IpDaddr if inet => self.dep(15, 2),
                Field::Ip6Saddr | Field::Ip6Daddr if inet => self.dep(15, 10),
                Field::TcpSport | Field::TcpDport => self.dep(16, 6),
                Field::UdpSport | Field::UdpDport => self.dep(16, 17),
                _ => {}
            }
        }
    }

    /// Loads fields side by side from `REG32_00`; returns their byte length
    /// (nft's: one field as it is, a concatenation padded).
    fn load_fields(&mut self, fields: &[Field]) -> u32 {
        self.deps_of(fields);
        let mut slot = 0;
        for f in fields {
            self.push(load(*f, REG32_00 + slot));
            slot += len32(f.data_type().len().div_ceil(4));
        }
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type()).collect();
        len32(reg_len(&types))
    }

    /// Puts the key in registers from `REG32_00`.
    /// Conntrack key `key` (a 32-bit flag word) has any of `bits`: load,
    /// mask, compare not-equal to zero (as nft does).
    fn ct_bits(&mut self, key: u32, bits: u32) {
        self.push(LowExpr::Ct {
            key,
            dreg: REG32_00,
        });
        self.push(LowExpr::Bitwise {
            sreg: REG32_00,
            dreg: REG32_00,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        });
        self.push(LowExpr::Cmp {
            sreg: REG32_00,
            op: 1,
            data: vec![0; 4],
        });
    }

    fn key(&mut self, key: &KeyExpr) {
        match key {
            KeyExpr::Fields(fields) => {
                self.load_fields(fields);
            }
            KeyExpr::Jhash {
                fields,
                modulus,
                seed,
                offset,
            } => {
                let len = self.load_fields(fields);
                self.push(LowExpr::Hash {
                    sreg: REG32_00,
                    len,
                    modulus: *modulus,
                    seed: *seed,
                    offset: *offset,
                    dreg: REG32_00,
                });
            }
            KeyExpr::Numgen {
                random,
                modulus,
                offset,
            } => self.push(LowExpr::Numgen {
                dreg: REG32_00,
                modulus: *modulus,
                random: *random,
                offset: *offset,
            }),
        }
    }

    /// Creates an anonymous set in the same transaction; returns its id.
    fn anon_set(&mut self, set: &Set, elements: Vec<(Key, Element)>) -> u32 {
        *self.next_id += 1;
        let id = *self.next_id;
        let low = low_set("__set%d", id, set, true);
        let elems = low_elems(set, &elements);
        self.pre.push(Msg::NewSet(low));
        self.pre.push(Msg::NewElems {
            set: "__set%d".into(),
            set_id: Some(id),
            elems,
        });
        id
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Cmp { field, op, value } => {
                self.load_fields(&[*field]);
                let op = match op {
                    CmpOp::Eq => 0,
                    CmpOp::Ne => 1,
                    CmpOp::Lt => 2,
                    CmpOp::Le => 3,
                    CmpOp::Gt => 4,
                    CmpOp::Ge => 5,
                };
                let data = value.encode(field.data_type());
                self.push(LowExpr::Cmp {
                    sreg: REG32_00,
                    op,
                    data,
                });
            }
            Expr::Range {
                field,
                negate,
                from,
                to,
            } => {
                self.load_fields(&[*field]);
                let t = field.data_type();
                self.push(LowExpr::Range {
                    sreg: REG32_00,
                    op: u32::from(*negate),
                    from: from.encode(t),
                    to: to.encode(t),
                });
            }
            Expr::Prefix {
                field,
                negate,
                addr,
                len,
            } => {
                self.load_fields(&[*field]);
                let bytes = match addr {
                    std::net::IpAddr::V4(a) => a.octets().to_vec(),
                    std::net::IpAddr::V6(a) => a.octets().to_vec(),
                };
                let mask: Vec<u8> = (0..bytes.len())
                    .map(|i| {
                        let bits = usize::from(*len).saturating_sub(i * 8).min(8);
                        if bits == 0 { 0 } else { 0xffu8 << (8 - bits) }
                    })
                    .collect();
                let net: Vec<u8> = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
                let xor = vec![0; mask.len()];
                self.push(LowExpr::Bitwise {
                    sreg: REG32_00,
                    dreg: REG32_00,
                    mask,
                    xor,
                });
                self.push(LowExpr::Cmp {
                    sreg: REG32_00,
                    op: u32::from(*negate),
                    data: net,
                });
            }
            // `ct state` (key 0) and `ct status` (key 2): any of the bits.
            Expr::CtState(states) => self.ct_bits(0, states.bits()),
            Expr::CtStatus(status) => self.ct_bits(2, status.bits()),
            Expr::Lookup { key, set, negate } => {
                self.key(key);
                self.push(LowExpr::Lookup {
                    sreg: REG32_00,
                    dreg: None,
                    set: set.clone(),
                    set_id: None,
                    invert: *negate,
                });
            }
            Expr::AnonLookup {
                key,
                negate,
                elements,
            } => {
                let types = key.types();
                let mut set = Set::new(types);
                set.flags.interval = elements.iter().any(|(_, end)| end.is_some());
                let elems = elements
                    .iter()
                    .map(|(k, end)| {
                        let e = Element {
                            end: end.clone(),
                            ..Element::default()
                        };
                        (k.clone(), e)
                    })
                    .collect();
                let id = self.anon_set(&set, elems);
                self.key(key);
                self.push(LowExpr::Lookup {
                    sreg: REG32_00,
                    dreg: None,
                    set: "__set%d".into(),
                    set_id: Some(id),
                    invert: *negate,
                });
            }
            Expr::Vmap { key, map } => {
                self.key(key);
                self.push(LowExpr::Lookup {
                    sreg: REG32_00,
                    dreg: Some(REG_VERDICT),
                    set: map.clone(),
                    set_id: None,
                    invert: false,
                });
            }
            Expr::AnonVmap { key, elements } => {
                let set = Set::verdict_map(key.types());
                let elems = elements
                    .iter()
                    .map(|(k, v)| {
                        let e = Element {
                            value: Some(MapValue::Verdict(v.clone())),
                            ..Element::default()
                        };
                        (k.clone(), e)
                    })
                    .collect();
                let id = self.anon_set(&set, elems);
                self.key(key);
                self.push(LowExpr::Lookup {
                    sreg: REG32_00,
                    dreg: Some(REG_VERDICT),
                    set: "__set%d".into(),
                    set_id: Some(id),
                    invert: false,
                });
            }
            Expr::SetMark { target, value } => {
                self.push(LowExpr::Immediate {
                    dreg: REG32_00,
                    data: value.to_ne_bytes().to_vec(),
                });
                self.push(match target {
                    MarkTarget::Meta => LowExpr::MetaSet {
                        key: 3,
                        sreg: REG32_00,
                    },
                    MarkTarget::Ct => LowExpr::CtSet {
                        key: 3,
                        sreg: REG32_00,
                    },
                });
            }
            Expr::Dynset {
                op,
                set,
                key,
                timeout,
            } => {
                self.load_fields(key);
                self.push(LowExpr::Dynset {
                    op: match op {
                        DynsetOp::Add => 0,
                        DynsetOp::Update => 1,
                    },
                    sreg_key: REG32_00,
                    set: set.clone(),
                    timeout_ms: timeout.map(ms),
                });
            }
            Expr::Counter => self.push(LowExpr::Counter),
            Expr::Log { prefix } => self.push(LowExpr::Log {
                prefix: prefix.clone(),
            }),
            Expr::Nat(nat) => self.nat(nat),
            Expr::Masquerade { fully_random } => self.push(LowExpr::Masq {
                flags: if *fully_random { 16 } else { 0 },
            }),
            Expr::Reject(r) => {
                let (kind, code) = match r {
                    Reject::TcpReset => {
                        self.dep(16, 6);
                        (1, 0)
                    }
                    Reject::NoRoute => (2, 0),
                    Reject::PortUnreachable => (2, 1),
                    Reject::HostUnreachable => (2, 2),
                    Reject::AdminProhibited => (2, 3),
                };
                self.push(LowExpr::Reject { kind, code });
            }
            Expr::Verdict(v) => {
                let (code, chain) = verdict_code(v);
                self.push(LowExpr::Verdict { code, chain });
            }
        }
    }

    fn nat(&mut self, nat: &crate::expr::Nat) {
        let (family, addr_slots) = match nat.family {
            IpFamily::V4 => (2, 1),
            IpFamily::V6 => (10, 4),
        };
        let kind = match nat.kind {
            NatKind::Snat => 0,
            NatKind::Dnat => 1,
        };
        let port_reg = REG32_00 + addr_slots;
        let mut reg_proto = None;
        let port = match &nat.to {
            NatTo::Addr { addr, port } => {
                let data = match addr {
                    std::net::IpAddr::V4(a) => a.octets().to_vec(),
                    std::net::IpAddr::V6(a) => a.octets().to_vec(),
                };
                self.push(LowExpr::Immediate {
                    dreg: REG32_00,
                    data,
                });
                *port
            }
            NatTo::Map { key, map, port } => {
                self.key(key);
                self.push(LowExpr::Lookup {
                    sreg: REG32_00,
                    dreg: Some(REG32_00),
                    set: map.clone(),
                    set_id: None,
                    invert: false,
                });
                // A map to `addr . inet_service` wrote the port after the address.
                let gives_port = matches!(
                    self.batch.set_spec(map).and_then(|s| s.data.as_ref()),
                    Some(MapData::Data(d)) if d.len() == 2
                );
                if gives_port {
                    reg_proto = Some(port_reg);
                }
                *port
            }
        };
        if let Some(p) = port {
            self.push(LowExpr::Immediate {
                dreg: port_reg,
                data: p.to_be_bytes().to_vec(),
            });
            reg_proto = Some(port_reg);
        }
        self.push(LowExpr::Nat {
            kind,
            family,
            reg_addr: REG32_00,
            reg_proto,
        });
    }
}

/// Lowers one rule: the messages creating its anonymous sets, then its
/// expressions.
pub(crate) fn lower_rule(
    batch: &Batch,
    rule: &Rule,
    next_id: &mut u32,
) -> (Vec<Msg>, Vec<LowExpr>) {
    let mut l = RuleLowerer {
        batch,
        family: batch.family,
        exprs: Vec::new(),
        deps: BTreeSet::new(),
        pre: Vec::new(),
        next_id,
    };
    for e in &rule.exprs {
        l.expr(e);
    }
    (l.pre, l.exprs)
}
