//! Parses rule text in the form [`crate::rule_text`] writes (a subset of
//! nft syntax). This is how rules come back from the kernel: their text is
//! stored with them, so no expression decoding is needed.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::expr::{
    ALL_FIELDS, AnonElement, CmpOp, CtStates, CtStatus, DynsetOp, Expr, Field, IpFamily, KeyExpr,
    MarkTarget, Nat, NatKind, NatTo, Reject, Verdict,
};
use crate::model::Rule;
use crate::types::{DataType, Key, Value};

/// Splits on whitespace; a quoted string is one token (quotes kept); `{`,
/// `}` and a trailing `,` are tokens of their own.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut s = String::from(chars.next().unwrap_or('"'));
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(ch) => s.push(ch),
                    None => return Err("unterminated string".into()),
                }
            }
            s.push('"');
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '"' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            let comma = s.len() > 1 && s.ends_with(',');
            if comma {
                s.pop();
            }
            out.push(s);
            if comma {
                out.push(",".into());
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

type P<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn peek_at(&self, n: usize) -> Option<&str> {
        self.toks.get(self.pos + n).map(String::as_str)
    }

    fn next(&mut self) -> P<String> {
        let t = self.toks.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        Ok(t)
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> P<()> {
        if self.eat(word) {
            Ok(())
        } else {
            Err(format!(
                "expected {word:?} at {:?}",
                self.peek().unwrap_or("end")
            ))
        }
    }

    fn number<T: TryFrom<u64>>(&mut self) -> P<T> {
        let t = self.next()?;
        let n = match t.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        }
        .map_err(|_| format!("{t:?} is not a number"))?;
        T::try_from(n).map_err(|_| format!("{t} is out of range"))
    }

    fn name(&mut self, sigil: Option<char>) -> P<String> {
        let t = self.next()?;
        let name = match sigil {
            Some(c) => t
                .strip_prefix(c)
                .ok_or(format!("expected {c}name at {t:?}"))?,
            None => &t,
        };
        if name.is_empty() {
            return Err("empty name".into());
        }
        Ok(name.to_owned())
    }

    fn string(&mut self) -> P<String> {
        let t = self.next()?;
        t.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(str::to_owned)
            .ok_or(format!("expected a quoted string at {t:?}"))
    }

    /// A field name of one to three words, if one starts here.
    fn field(&mut self) -> Option<Field> {
        let found = ALL_FIELDS.iter().copied().find(|f| {
            f.name()
                .split(' ')
                .enumerate()
                .all(|(i, w)| self.peek_at(i) == Some(w))
        })?;
        // `meta mark set` and `ct mark set` are statements, not fields.
        let words = found.name().split(' ').count();
        if self.peek_at(words) == Some("set") {
            return None;
        }
        self.pos += words;
        Some(found)
    }

    fn fields(&mut self) -> P<Vec<Field>> {
        let mut out = vec![self.field().ok_or("expected a field")?];
        while self.peek() == Some(".") {
            self.pos += 1;
            out.push(self.field().ok_or("expected a field after '.'")?);
        }
        Ok(out)
    }

    fn offset(&mut self) -> P<u32> {
        if self.eat("offset") {
            self.number()
        } else {
            Ok(0)
        }
    }

    fn key_expr(&mut self) -> P<Option<KeyExpr>> {
        if self.eat("jhash") {
            let fields = self.fields()?;
            self.expect("mod")?;
            let modulus = self.number()?;
            self.expect("seed")?;
            let seed = self.number()?;
            let offset = self.offset()?;
            return Ok(Some(KeyExpr::Jhash {
                fields,
                modulus,
                seed,
                offset,
            }));
        }
        if self.eat("numgen") {
            let random = match self.next()?.as_str() {
                "random" => true,
                "inc" => false,
                other => return Err(format!("numgen mode {other:?}")),
            };
            self.expect("mod")?;
            let modulus = self.number()?;
            let offset = self.offset()?;
            return Ok(Some(KeyExpr::Numgen {
                random,
                modulus,
                offset,
            }));
        }
        if self.field_here() {
            return Ok(Some(KeyExpr::Fields(self.fields()?)));
        }
        Ok(None)
    }

    fn field_here(&mut self) -> bool {
        let save = self.pos;
        let found = self.field().is_some();
        self.pos = save;
        found
    }

    fn verdict(&mut self) -> P<Verdict> {
        Ok(match self.next()?.as_str() {
            "accept" => Verdict::Accept,
            "drop" => Verdict::Drop,
            "return" => Verdict::Return,
            "jump" => Verdict::Jump(self.name(None)?),
            "goto" => Verdict::Goto(self.name(None)?),
            other => return Err(format!("expected a verdict at {other:?}")),
        })
    }

    /// The tokens of one `{ ... }` element up to `,`, `:` or `}`, as a key
    /// and optional range end.
    fn element_key(&mut self, types: &[DataType]) -> P<AnonElement> {
        let mut start = Vec::new();
        let mut end = Vec::new();
        for (i, t) in types.iter().enumerate() {
            if i > 0 {
                self.expect(".")?;
            }
            let tok = self.next()?;
            let (a, b) = value_or_range(*t, &tok)?;
            start.push(a);
            end.push(b);
        }
        let end = (end != start).then_some(Key(end));
        Ok((Key(start), end))
    }

    fn braced<T>(&mut self, mut item: impl FnMut(&mut Self) -> P<T>) -> P<Vec<T>> {
        self.expect("{")?;
        let mut out = Vec::new();
        loop {
            out.push(item(self)?);
            if self.eat("}") {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }

    fn item(&mut self) -> P<Expr> {
        let w = self.peek().ok_or("unexpected end")?.to_owned();
        match w.as_str() {
            "ct" if self.peek_at(1) == Some("state") => {
                self.pos += 2;
                let t = self.next()?;
                return Ok(Expr::CtState(CtStates::from_names(&t)?));
            }
            "ct" if self.peek_at(1) == Some("status") => {
                self.pos += 2;
                let t = self.next()?;
                return Ok(Expr::CtStatus(CtStatus::from_names(&t)?));
            }
            "ct" | "meta" if self.peek_at(1) == Some("mark") && self.peek_at(2) == Some("set") => {
                self.pos += 3;
                let target = if w == "ct" {
                    MarkTarget::Ct
                } else {
                    MarkTarget::Meta
                };
                return Ok(Expr::SetMark {
                    target,
                    value: self.number()?,
                });
            }
            "counter" => {
                self.pos += 1;
                return Ok(Expr::Counter);
            }
            "log" => {
                self.pos += 1;
                let prefix = if self.eat("prefix") {
                    Some(self.string()?)
                } else {
                    None
                };
                return Ok(Expr::Log { prefix });
            }
            "masquerade" => {
                self.pos += 1;
                let fully_random = self.eat("fully-random");
                return Ok(Expr::Masquerade { fully_random });
            }
            "reject" => {
                self.pos += 1;
                self.expect("with")?;
                let r = match (self.next()?.as_str(), self.next()?.as_str()) {
                    ("tcp", "reset") => Reject::TcpReset,
                    ("icmpx", "port-unreachable") => Reject::PortUnreachable,
                    ("icmpx", "host-unreachable") => Reject::HostUnreachable,
                    ("icmpx", "admin-prohibited") => Reject::AdminProhibited,
                    ("icmpx", "no-route") => Reject::NoRoute,
                    (a, b) => return Err(format!("unknown reject type {a} {b}")),
                };
                return Ok(Expr::Reject(r));
            }
            "accept" | "drop" | "return" | "jump" | "goto" => {
                return Ok(Expr::Verdict(self.verdict()?));
            }
            "add" | "update" => return self.dynset(),
            "snat" | "dnat" => return self.nat(),
            _ => {}
        }
        let key = self.key_expr()?.ok_or(format!("unknown item at {w:?}"))?;
        self.after_key(key)
    }

    fn dynset(&mut self) -> P<Expr> {
        let op = if self.next()? == "add" {
            DynsetOp::Add
        } else {
            DynsetOp::Update
        };
        let set = self.name(Some('@'))?;
        self.expect("{")?;
        let key = self.fields()?;
        let timeout = if self.eat("timeout") {
            Some(parse_duration(&self.next()?)?)
        } else {
            None
        };
        self.expect("}")?;
        Ok(Expr::Dynset {
            op,
            set,
            key,
            timeout,
        })
    }

    fn nat(&mut self) -> P<Expr> {
        let kind = if self.next()? == "snat" {
            NatKind::Snat
        } else {
            NatKind::Dnat
        };
        let family = match self.next()?.as_str() {
            "ip" => IpFamily::V4,
            "ip6" => IpFamily::V6,
            other => return Err(format!("expected ip or ip6 at {other:?}")),
        };
        self.expect("to")?;
        let to = if let Some(key) = self.key_expr()? {
            self.expect("map")?;
            let map = self.name(Some('@'))?;
            let port = if self.eat(":") {
                Some(self.number()?)
            } else {
                None
            };
            NatTo::Map { key, map, port }
        } else {
            let (addr, port) = nat_addr(&self.next()?)?;
            NatTo::Addr { addr, port }
        };
        Ok(Expr::Nat(Nat { kind, family, to }))
    }

    fn after_key(&mut self, key: KeyExpr) -> P<Expr> {
        let types = key.types();
        if self.eat("vmap") {
            if self.peek().is_some_and(|t| t.starts_with('@')) {
                let map = self.name(Some('@'))?;
                return Ok(Expr::Vmap { key, map });
            }
            let elements = self.braced(|p| {
                let (k, _) = p.element_key(&types)?;
                p.expect(":")?;
                Ok((k, p.verdict()?))
            })?;
            return Ok(Expr::AnonVmap { key, elements });
        }
        let op = match self.peek() {
            Some(op @ ("!=" | "<" | "<=" | ">" | ">=")) => {
                let op = match op {
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                self.pos += 1;
                op
            }
            _ => CmpOp::Eq,
        };
        let negate = op == CmpOp::Ne;
        let plain = matches!(op, CmpOp::Eq | CmpOp::Ne);
        if plain && self.peek().is_some_and(|t| t.starts_with('@')) {
            let set = self.name(Some('@'))?;
            return Ok(Expr::Lookup { key, set, negate });
        }
        if plain && self.peek() == Some("{") {
            let elements = self.braced(|p| p.element_key(&types))?;
            return Ok(Expr::AnonLookup {
                key,
                negate,
                elements,
            });
        }
        let KeyExpr::Fields(fields) = &key else {
            return Err("a hash or numgen is only a key of a set or map".into());
        };
        let [field] = fields.as_slice() else {
            return Err("a concatenation is only a key of a set or map".into());
        };
        let field = *field;
        let t = field.data_type();
        let tok = self.next()?;
        if let Some(value) = Value::parse(t, &tok) {
            return Ok(Expr::Cmp { field, op, value });
        }
        if plain
            && let Some((addr, len)) = tok.split_once('/')
            && matches!(t, DataType::Ipv4Addr | DataType::Ipv6Addr)
        {
            let addr: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
            let len = len
                .parse()
                .map_err(|_| format!("bad prefix length {len:?}"))?;
            return Ok(Expr::Prefix {
                field,
                negate,
                addr,
                len,
            });
        }
        if plain && let Some((from, to)) = split_range(t, &tok) {
            return Ok(Expr::Range {
                field,
                negate,
                from,
                to,
            });
        }
        Err(format!("{tok:?} is not a {t} value for {field}"))
    }
}

/// `a-b` split at the first `-` that leaves two values of type `t`.
fn split_range(t: DataType, tok: &str) -> Option<(Value, Value)> {
    tok.match_indices('-')
        .find_map(|(i, _)| Some((Value::parse(t, &tok[..i])?, Value::parse(t, &tok[i + 1..])?)))
}

/// A value, a range `a-b` or a prefix `a/len`, as (start, end).
fn value_or_range(t: DataType, tok: &str) -> P<(Value, Value)> {
    if let Some(v) = Value::parse(t, tok) {
        return Ok((v.clone(), v));
    }
    if let Some(r) = split_range(t, tok) {
        return Ok(r);
    }
    if let Some((addr, len)) = tok.split_once('/') {
        let bits = u32::try_from(t.len() * 8).unwrap_or(0);
        let len: u32 = len.parse().map_err(|_| format!("bad prefix {tok:?}"))?;
        let start = Value::parse(t, addr).ok_or(format!("bad prefix {tok:?}"))?;
        if len > bits || !matches!(t, DataType::Ipv4Addr | DataType::Ipv6Addr) {
            return Err(format!("bad prefix {tok:?}"));
        }
        let host = if len == bits {
            0
        } else {
            u128::MAX >> (128 - bits + len)
        };
        let mut bytes = start.encode(t);
        for (i, b) in bytes.iter_mut().rev().enumerate() {
            let shift = i * 8;
            if shift < 128 {
                *b |= ((host >> shift) & 0xff) as u8;
            }
        }
        let end = Value::decode(t, &bytes).ok_or(format!("bad prefix {tok:?}"))?;
        return Ok((start, end));
    }
    Err(format!("{tok:?} is not a {t} value"))
}

/// `198.18.0.2`, `198.18.0.2:80`, `fd00::2` or `[fd00::2]:80`.
fn nat_addr(tok: &str) -> P<(IpAddr, Option<u16>)> {
    let bad = || format!("bad NAT address {tok:?}");
    if let Ok(a) = tok.parse::<IpAddr>() {
        return Ok((a, None));
    }
    let (addr, port) = if let Some(rest) = tok.strip_prefix('[') {
        rest.split_once("]:").ok_or_else(bad)?
    } else {
        tok.rsplit_once(':').ok_or_else(bad)?
    };
    let addr = addr.parse().map_err(|_| bad())?;
    let port = port.parse().map_err(|_| bad())?;
    Ok((addr, Some(port)))
}

/// Parses nft's duration form: `1d2h3m4s500ms`.
pub(crate) fn parse_duration(s: &str) -> P<Duration> {
    let bad = || format!("bad duration {s:?}");
    let mut ms: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let u = match rest.as_bytes().first() {
                Some(b'd') => 86_400_000,
                Some(b'h') => 3_600_000,
                Some(b'm') => 60_000,
                Some(b's') => 1000,
                _ => return Err(bad()),
            };
            (u, 1)
        };
        ms = n
            .checked_mul(unit)
            .and_then(|v| ms.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[len..];
    }
    Ok(Duration::from_millis(ms))
}

/// Parses one rule from the text [`crate::rule_text`] writes.
///
/// # Errors
///
/// [`Error::Parse`] with the reason, for text this crate would not write.
pub fn parse_rule(text: &str) -> Result<Rule> {
    let fail = |reason: String| Error::Parse {
        text: text.to_owned(),
        reason,
    };
    let mut p = Parser {
        toks: tokenize(text).map_err(fail)?,
        pos: 0,
    };
    let mut rule = Rule::default();
    while let Some(t) = p.peek() {
        if t == "comment" {
            p.pos += 1;
            rule.comment = Some(p.string().map_err(fail)?);
            if p.peek().is_some() {
                return Err(fail("the comment must come last".into()));
            }
            break;
        }
        rule.exprs.push(p.item().map_err(fail)?);
    }
    if rule.exprs.is_empty() {
        return Err(fail("empty rule".into()));
    }
    Ok(rule)
}

impl std::str::FromStr for Rule {
    type Err = Error;

    /// The same as [`parse_rule`].
    fn from_str(s: &str) -> Result<Self> {
        parse_rule(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::rule_text;

    #[test]
    fn rule_texts_round_trip() {
        let texts = [
            "ct state established,related accept",
            "ct status dnat ip saddr 127.0.0.0/8 masquerade",
            "ct status seen-reply,snat,dnat return",
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip saddr 198.18.0.0/16 tcp dport != 22 counter drop",
            "tcp dport 1000-2000 ip6 saddr != fd00:18::/48 return",
            "meta l4proto tcp dnat ip to jhash ip saddr . tcp sport mod 4 seed 0x1234 map @slots",
            "dnat ip to numgen random mod 2 offset 3 map @m : 80",
            "dnat ip6 to [fd00:18::2]:8080",
            "snat ip to 198.19.128.1",
            "numgen inc mod 2 vmap { 0 : goto a, 1 : jump b/c-d }",
            "tcp dport { 80, 443, 8000-8080 } accept comment \"web ports\"",
            "ip saddr . tcp dport != { 198.18.0.0/24 . 80, 198.18.1.1 . 90-99 } drop",
            "update @aff { ip saddr . th dport timeout 1h1s } meta mark set 0x00004000",
            "add @seen { ip saddr } ct mark set 0x00000001 log prefix \"a b \" counter",
            "meta iifname \"eth0\" meta nfproto ipv6 fib daddr type local masquerade fully-random",
            "fib saddr type local goto svc4-x comment \"short-circuit local traffic\"",
            "fib saddr type != local fib daddr type local accept",
            "ct mark 0x00000002 meta mark != 0x00000003 reject with tcp reset",
            "meta l4proto udp reject with icmpx admin-prohibited",
            "ip saddr @allowed ip daddr != @blocked goto x",
        ];
        for text in texts {
            let rule = parse_rule(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rule_text(&rule), text);
        }
    }

    #[test]
    fn bad_text_is_an_error_not_a_panic() {
        for text in [
            "",
            "ip saddr",
            "tcp dport 99999",
            "jump",
            "log prefix \"x",
            "comment \"x\" accept",
            "ip saddr . tcp dport 80",
            "dnat ip to",
            "update @s { ip saddr timeout 5x }",
            "numgen mod 2 vmap @x",
            "ct state bogus",
            "ct status natted",
            "ct status",
            "{ }",
        ] {
            assert!(parse_rule(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h1s").unwrap(), Duration::from_secs(3601));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
    }
}
