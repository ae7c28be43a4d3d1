//! JSON input: splitting text into objects, and reading an object's head.
//!
//! Two splitters give the same documents:
//! - [`parse_checked`] runs serde_json over the whole text once: a stream of
//!   values, each an object, a `*List` whose `items` are the objects, or an
//!   array of objects. Everything it returns is valid JSON.
//! - [`split_fast`] finds the same objects with a structural scan that does
//!   not validate the list items (they are validated when they are decoded,
//!   on all cores) and validates everything else by running
//!   [`parse_checked`] over a *skeleton*: the text with every item replaced
//!   by `0`. The skeleton must then yield exactly the `0`s where the scan put
//!   them; anything else (escaped keys, duplicate fields,
//!   syntax errors) makes it give up, and the caller uses [`parse_checked`].
//!
//! Substituting a valid JSON value for a `0` that the skeleton parses as an
//! array element keeps the text valid and the element where it was, so the
//! fast split returns what [`parse_checked`] would, once every item it marks
//! [`Body::JsonUnchecked`] has been found valid.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::yaml::{Body, RawDoc};

// ------------------------------------------------------------ checked split

/// The fields of a top-level object that decide whether it is a list.
#[derive(Deserialize)]
struct ListHead<'a> {
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// One top-level value of a JSON stream: an array of objects, or an object.
enum TopLevel<'a> {
    Array(Vec<&'a RawValue>),
    Object(ListHead<'a>),
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object or an array of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(TopLevel::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                ListHead::deserialize(MapAccessDeserializer::new(map)).map(TopLevel::Object)
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

/// JSON whitespace, as serde_json skips it between values.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Splits a JSON stream into objects in one validating pass.
pub(crate) fn parse_checked(text: &str) -> Result<Vec<RawDoc<'_>>, serde_json::Error> {
    let mut out = Vec::new();
    let base = text.as_ptr() as usize;
    let mut lines = LineCounter::new(text);
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<TopLevel<'_>>();
    let mut end = 0;
    while let Some(top) = stream.next() {
        let top = top?;
        let bytes = text.as_bytes();
        let mut start = end;
        while bytes.get(start).copied().is_some_and(is_ws) {
            start += 1;
        }
        end = stream.byte_offset();
        match top {
            TopLevel::Array(items) => push_items(base, &mut lines, items, &mut out),
            TopLevel::Object(ListHead {
                kind: Some(kind),
                items: Some(items),
            }) if kind.ends_with("List") => push_items(base, &mut lines, items, &mut out),
            TopLevel::Object(_) => {
                let body = text.get(start..end).unwrap_or_default();
                out.push(RawDoc {
                    line: lines.line_at(start),
                    body: Body::Json(body),
                });
            }
        }
    }
    Ok(out)
}

fn push_items<'a>(
    base: usize,
    lines: &mut LineCounter<'_>,
    items: Vec<&'a RawValue>,
    out: &mut Vec<RawDoc<'a>>,
) {
    out.reserve(items.len());
    for item in items {
        let start = item.get().as_ptr() as usize - base;
        out.push(RawDoc {
            line: lines.line_at(start),
            body: Body::Json(item.get()),
        });
    }
}

/// Turns byte offsets into 1-based line numbers. Offsets come in increasing
/// order, so counting resumes where the last call stopped (linear in the
/// input, not quadratic).
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u32,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> u32 {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        // Byte-wide sums of 0/1 vectorize best; 255 of them fit in a u8.
        for chunk in self.text[self.offset..offset].chunks(255) {
            let n = chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n'));
            self.line += u32::from(n);
        }
        self.offset = offset;
        self.line
    }
}

// ------------------------------------------------------------ fast split

/// A top-level value as the scan sees it.
enum Top {
    /// A value kept whole (byte range).
    Whole(usize, usize),
    /// A list: the range of its items in the item table.
    List(usize, usize),
}

/// A structural scanner over JSON text. It checks only what it needs to find
/// values; what it does not check, the skeleton parse or the item decoders
/// do.
struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn skip_ws(&mut self) {
        while self.b.get(self.pos).copied().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Skips a string whose opening quote is at `pos`; returns the range of
    /// its contents and whether it holds an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.pos + 1;
        let (end, escaped) = skip_string(self.b, start)?;
        self.pos = end;
        Some((start, end - 1, escaped))
    }

    /// Skips one value starting at `pos` (no leading whitespace).
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                self.pos = skip_container(self.b, self.pos)?;
                Some(())
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !is_ws(c) && !matches!(c, b',' | b']' | b'}' | b':'))
                {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    /// Expects `c` after optional whitespace.
    fn expect(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// The elements of an array starting at `pos`, appended to `items`.
    fn array(&mut self, items: &mut Vec<(usize, usize)>) -> Option<()> {
        self.expect(b'[')?;
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            let start = self.pos;
            self.value()?;
            items.push((start, self.pos));
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A top-level object: whole, or a list whose items go to `items`.
    fn object(&mut self, items: &mut Vec<(usize, usize)>) -> Option<Top> {
        let start = self.pos;
        let first_item = items.len();
        self.expect(b'{')?;
        let mut kind: Option<&[u8]> = None;
        let mut has_items = false;
        self.skip_ws();
        if self.peek()? != b'}' {
            loop {
                self.skip_ws();
                if self.peek()? != b'"' {
                    return None;
                }
                let (ks, ke, escaped) = self.string()?;
                if escaped {
                    return None;
                }
                self.expect(b':')?;
                self.skip_ws();
                match &self.b[ks..ke] {
                    b"kind" if kind.is_none() && self.peek()? == b'"' => {
                        let (vs, ve, escaped) = self.string()?;
                        if escaped {
                            return None;
                        }
                        kind = Some(&self.b[vs..ve]);
                    }
                    b"items" if !has_items && self.peek()? == b'[' => {
                        has_items = true;
                        self.array(items)?;
                    }
                    b"kind" | b"items" => return None,
                    _ => {
                        self.value()?;
                    }
                }
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        if has_items && kind.is_some_and(|k| k.ends_with(b"List")) {
            Some(Top::List(first_item, items.len()))
        } else {
            items.truncate(first_item);
            Some(Top::Whole(start, self.pos))
        }
    }
}

/// Skips the object or array opening at `start`: brackets are matched
/// (not paired by type) and strings skipped, nothing else is looked at.
/// Returns the offset after it.
fn skip_container(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    loop {
        let c = *b.get(i)?;
        i += 1;
        match c {
            b'"' => i = skip_string(b, i)?.0,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
}

/// Skips the rest of a string whose contents start at `i`; returns the
/// offset after the closing quote and whether the string holds an escape.
fn skip_string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        // Eight bytes at a time up to the first quote or backslash.
        while let Some(chunk) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let found = has_byte(word, b'"') | has_byte(word, b'\\');
            if found != 0 {
                // The lowest flag is exact (only bytes above a match can be
                // flagged wrongly), and little-endian puts it first.
                i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// Flags (high bit of each byte) the bytes of `word` equal to `byte`; the
/// lowest flag is always right, higher ones may be false.
fn has_byte(word: u64, byte: u8) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (LO * u64::from(byte));
    x.wrapping_sub(LO) & !x & HI
}

/// Splits JSON text into objects without validating the list items (they
/// come back as [`Body::JsonUnchecked`]); `None` when the text needs
/// [`parse_checked`] (see the module documentation).
pub(crate) fn split_fast(text: &str) -> Option<Vec<RawDoc<'_>>> {
    let mut scan = Scan {
        b: text.as_bytes(),
        pos: 0,
    };
    let mut tops = Vec::new();
    let mut items: Vec<(usize, usize)> = Vec::new();
    loop {
        scan.skip_ws();
        match scan.peek() {
            None => break,
            Some(b'{') => tops.push(scan.object(&mut items)?),
            Some(b'[') => {
                let first = items.len();
                scan.array(&mut items)?;
                tops.push(Top::List(first, items.len()));
            }
            Some(_) => return None,
        }
    }

    // The skeleton: the text with every item replaced by `0`.
    let cut: usize = items.iter().map(|(s, e)| e - s - 1).sum();
    let mut skeleton = String::with_capacity(text.len() - cut);
    let mut zeros = Vec::with_capacity(items.len());
    let mut copied = 0;
    for &(s, e) in &items {
        skeleton.push_str(text.get(copied..s)?);
        zeros.push(skeleton.len());
        skeleton.push('0');
        copied = e;
    }
    skeleton.push_str(text.get(copied..)?);
    let checked = parse_checked(&skeleton).ok()?;

    // The skeleton must split exactly where the scan did.
    let skel_base = skeleton.as_ptr() as usize;
    let mut checked = checked.into_iter();
    let mut out = Vec::with_capacity(items.len() + tops.len());
    let mut lines = LineCounter::new(text);
    // Bytes the skeleton lacks before the current point.
    let mut removed = 0;
    for top in tops {
        match top {
            Top::Whole(s, e) => {
                let doc = checked.next()?;
                let Body::Json(body) = doc.body else {
                    return None;
                };
                if body.as_ptr() as usize - skel_base + removed != s || body.len() != e - s {
                    return None;
                }
                out.push(RawDoc {
                    line: lines.line_at(s),
                    body: Body::Json(text.get(s..e)?),
                });
            }
            Top::List(first, last) => {
                for (&(s, e), &zero) in items[first..last].iter().zip(&zeros[first..last]) {
                    let doc = checked.next()?;
                    let Body::Json(body) = doc.body else {
                        return None;
                    };
                    if body.as_ptr() as usize - skel_base != zero || body != "0" {
                        return None;
                    }
                    out.push(RawDoc {
                        line: lines.line_at(s),
                        body: Body::JsonUnchecked(text.get(s..e)?),
                    });
                    removed += e - s - 1;
                }
            }
        }
    }
    checked.next().is_none().then_some(out)
}

/// Whether `text` is one valid JSON value (surrounding whitespace allowed).
pub(crate) fn is_valid(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

// ------------------------------------------------------------ heads

/// The fields of a manifest read before decoding it: enough to pick its
/// type and to name it in errors.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Head<'a> {
    #[serde(default, borrow)]
    pub(crate) api_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) metadata: Option<HeadMeta<'a>>,
    #[serde(default, borrow, rename = "type")]
    pub(crate) secret_type: Option<Cow<'a, str>>,
}

/// `metadata.name` and `metadata.namespace`.
#[derive(Default, Deserialize)]
pub(crate) struct HeadMeta<'a> {
    #[serde(default, borrow)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) namespace: Option<Cow<'a, str>>,
}

impl Head<'_> {
    /// Whether reading can stop: the object's type and name are known.
    fn complete(&self) -> bool {
        self.api_version.is_some()
            && self.kind.is_some()
            && self.metadata.is_some()
            && (self.kind.as_deref() != Some("Secret") || self.secret_type.is_some())
    }
}

/// Reads the head of a JSON object, stopping as soon as it has
/// `apiVersion`, `kind` and `metadata` (and `type`, for Secrets): the body
/// is decoded right after, so the rest is not read twice. `None` when the
/// text is not an object or a head field has the wrong type.
pub(crate) fn head(text: &str) -> Option<Head<'_>> {
    match head_plain(text) {
        Some(head) => Some(head),
        None => head_serde(text),
    }
}

/// What a head string field holds: a string, `null`, or something only
/// serde_json should judge.
fn plain_string<'a>(scan: &mut Scan<'a>, text: &'a str) -> Option<Option<Cow<'a, str>>> {
    match scan.peek()? {
        b'"' => {
            let (s, e, escaped) = scan.string()?;
            if escaped {
                return None;
            }
            Some(Some(Cow::Borrowed(text.get(s..e)?)))
        }
        b'n' if scan.b.get(scan.pos..scan.pos + 4) == Some(&b"null"[..]) => {
            scan.pos += 4;
            Some(None)
        }
        _ => None,
    }
}

/// The head of a plain object (no escapes in the fields read, string or
/// null values, metadata an object or null) without serde; `None` for
/// anything else, which [`head_serde`] then reads.
fn head_plain(text: &str) -> Option<Head<'_>> {
    let mut scan = Scan {
        b: text.as_bytes(),
        pos: 0,
    };
    let mut head = Head::default();
    scan.expect(b'{')?;
    scan.skip_ws();
    if scan.peek()? == b'}' {
        return Some(head);
    }
    loop {
        scan.skip_ws();
        if scan.peek()? != b'"' {
            return None;
        }
        let (ks, ke, escaped) = scan.string()?;
        if escaped {
            return None;
        }
        scan.expect(b':')?;
        scan.skip_ws();
        match &scan.b[ks..ke] {
            b"apiVersion" => head.api_version = plain_string(&mut scan, text)?,
            b"kind" => head.kind = plain_string(&mut scan, text)?,
            b"type" => head.secret_type = plain_string(&mut scan, text)?,
            b"metadata" => head.metadata = meta_plain(&mut scan, text)?,
            _ => {
                scan.value()?;
            }
        }
        if head.complete() {
            return Some(head);
        }
        scan.skip_ws();
        match scan.peek()? {
            b',' => scan.pos += 1,
            b'}' => return Some(head),
            _ => return None,
        }
    }
}

/// `metadata`: `Some(None)` for null, `Some(Some(..))` for a plain object.
fn meta_plain<'a>(scan: &mut Scan<'a>, text: &'a str) -> Option<Option<HeadMeta<'a>>> {
    if scan.b.get(scan.pos..scan.pos + 4) == Some(&b"null"[..]) {
        scan.pos += 4;
        return Some(None);
    }
    let mut meta = HeadMeta::default();
    let (mut name, mut namespace) = (false, false);
    scan.expect(b'{')?;
    scan.skip_ws();
    if scan.peek()? == b'}' {
        scan.pos += 1;
        return Some(Some(meta));
    }
    loop {
        scan.skip_ws();
        if scan.peek()? != b'"' {
            return None;
        }
        let (ks, ke, escaped) = scan.string()?;
        if escaped {
            return None;
        }
        scan.expect(b':')?;
        scan.skip_ws();
        match &scan.b[ks..ke] {
            // serde refuses a repeated field; leave that to it.
            b"name" if !name => {
                name = true;
                meta.name = plain_string(scan, text)?;
            }
            b"namespace" if !namespace => {
                namespace = true;
                meta.namespace = plain_string(scan, text)?;
            }
            b"name" | b"namespace" => return None,
            _ => {
                scan.value()?;
            }
        }
        scan.skip_ws();
        match scan.peek()? {
            b',' => scan.pos += 1,
            b'}' => {
                scan.pos += 1;
                return Some(Some(meta));
            }
            _ => return None,
        }
    }
}

/// The head read by serde_json: every spelling JSON allows.
fn head_serde(text: &str) -> Option<Head<'_>> {
    use serde::de::Error as _;

    struct Seed<'h, 'a>(&'h mut Head<'a>);
    const DONE: &str = "k8snet: head complete";

    impl<'de> DeserializeSeed<'de> for Seed<'_, 'de> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Seed<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let head = self.0;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match &*key {
                    "apiVersion" => head.api_version = map.next_value()?,
                    "kind" => head.kind = map.next_value()?,
                    "metadata" => head.metadata = map.next_value()?,
                    "type" => head.secret_type = map.next_value()?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                if head.complete() {
                    return Err(A::Error::custom(DONE));
                }
            }
            Ok(())
        }
    }

    let mut head = Head::default();
    let mut de = serde_json::Deserializer::from_str(text);
    match Seed(&mut head).deserialize(&mut de) {
        Ok(()) => Some(head),
        Err(e) if e.to_string().starts_with(DONE) => Some(head),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The splitter this module replaced: serde_json over the whole text,
    /// then over each list again.
    fn parse_two_pass(text: &str) -> Result<Vec<(u32, &str)>, serde_json::Error> {
        let mut out = Vec::new();
        let base = text.as_ptr() as usize;
        let mut lines = LineCounter::new(text);
        for raw in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
            let raw = raw?;
            let start = raw.get().as_ptr() as usize - base;
            if raw.get().starts_with('[') {
                let items: Vec<&RawValue> = serde_json::from_str(raw.get())?;
                for i in items {
                    out.push((lines.line_at(i.get().as_ptr() as usize - base), i.get()));
                }
                continue;
            }
            let head: ListHead<'_> = serde_json::from_str(raw.get())?;
            match head {
                ListHead {
                    kind: Some(kind),
                    items: Some(items),
                } if kind.ends_with("List") => {
                    for i in items {
                        out.push((lines.line_at(i.get().as_ptr() as usize - base), i.get()));
                    }
                }
                _ => out.push((lines.line_at(start), raw.get())),
            }
        }
        Ok(out)
    }

    fn plain(docs: &[RawDoc<'_>]) -> Vec<(u32, String)> {
        docs.iter()
            .map(|d| {
                let text = match &d.body {
                    Body::Json(t) | Body::JsonUnchecked(t) => t.to_string(),
                    Body::Value(v) => v.to_string(),
                };
                (d.line, text)
            })
            .collect()
    }

    /// Inputs where the fast scan, the skeleton check or the fallback each
    /// have something to get wrong.
    const CASES: &[&str] = &[
        r#"{"kind":"List","items":[{"kind":"Pod"},{"kind":"Service"}]}"#,
        "{\"apiVersion\":\"v1\",\"items\":[\n {\"a\":\"]}\"},\n\n {\"b\":[1,{\"c\":\"\\\"\"}]}\n],\"kind\":\"PodList\"}",
        "{\"kind\":\"Pod\"}\n{\"kind\":\"List\",\"items\":[\n{\"kind\":\"A\"},\n {\"kind\":\"B\"}]}  [ {\"x\":1} , 2 ]",
        r#"{"kind":"List","items":[]}"#,
        r#"{"kind":"Thing","items":[{"kind":"Pod"}]}"#,
        r#"{"kind":"List","items":null}"#,
        r#"{"kind":null,"items":[1]}"#,
        r#"{"ki\u006ed":"List","items":[{"kind":"Pod"}]}"#,
        r#"{"kind":"Li\u0073t","items":[{"kind":"Pod"}]}"#,
        r#"{"kind":"List","kind":"List","items":[{"kind":"Pod"}]}"#,
        r#"{"kind":"List","items":[{"kind":"Pod"}],"items":[]}"#,
        r#"{"kind":"List","items":[{"kind":"Pod"},]}"#,
        r#"{"kind":"List","items":[{"kind":"Pod"} {"kind":"Pod"}]}"#,
        r#"{"kind":"List","items":[{"kind":"Pod"}]"#,
        r#"{"kind":"List","items":[tru e]}"#,
        r#"{"kind":"List","items":[01]}"#,
        r#"{"kind":"List","items":[{"kind":"Pod"]}]}"#,
        r#"{"kind":"List","items":[{"a":1}],"x":[}"#,
        r#"{"kind":"List","items":[{"a":1}]} 7"#,
        r#"{"kind":"List","items":[{"a":1}]} "s""#,
        "[]",
        "[{\"kind\":\"Pod\"},\"x\",null,[1,2]]",
        "{}",
        "{} {}",
        "{\"a\":\"\u{e9}\u{1F600}\",\"kind\":\"List\",\"items\":[\"\u{e9}\",{\"\u{e9}\":\"\u{1F600}\"}]}",
        "{\"kind\":\"List\",\"items\":[\"a\u{1}b\"]}",
        "  \n{\"kind\" : \"List\" , \"items\" : [ 1 , { } ] }\n\n",
    ];

    #[test]
    fn checked_split_equals_the_two_pass_split() {
        for case in CASES {
            let old = parse_two_pass(case);
            let new = parse_checked(case);
            match (old, new) {
                (Ok(old), Ok(new)) => {
                    let new: Vec<(u32, String)> = plain(&new);
                    let old: Vec<(u32, String)> =
                        old.into_iter().map(|(l, t)| (l, t.to_string())).collect();
                    assert_eq!(old, new, "{case}");
                }
                (Err(_), Err(_)) => {}
                (old, new) => panic!("{case}: {:?} vs {:?}", old.is_ok(), new.is_ok()),
            }
        }
    }

    /// The fast split either gives up or returns what the checked split
    /// returns, provided its unchecked items are valid; when an item is
    /// not, the checked split fails.
    fn fast_agrees(case: &str) {
        let checked = parse_checked(case);
        let Some(fast) = split_fast(case) else {
            return;
        };
        let unchecked_valid = fast.iter().all(|d| match d.body {
            Body::JsonUnchecked(t) => is_valid(t),
            _ => true,
        });
        match checked {
            Ok(checked) if unchecked_valid => assert_eq!(plain(&checked), plain(&fast), "{case}"),
            Ok(_) => panic!("{case}: an unchecked item is invalid in valid text"),
            Err(_) => assert!(!unchecked_valid, "{case}: invalid text split as valid"),
        }
    }

    #[test]
    fn fast_split_agrees_with_the_checked_split() {
        for case in CASES {
            fast_agrees(case);
        }
        // The common shapes take the fast path.
        assert!(split_fast(CASES[0]).is_some());
        assert!(split_fast(CASES[1]).is_some());
        assert!(split_fast(CASES[2]).is_some());
        assert!(split_fast(CASES[7]).is_none(), "escaped key");
        assert!(split_fast(CASES[9]).is_none(), "duplicate kind");
    }

    #[test]
    fn deep_items_split_as_the_checked_split_does() {
        // serde_json skips values without a depth limit, so list items of
        // any depth split; decoding them alone applies the same limit as
        // before.
        for depth in [1, 127, 128, 129, 2000] {
            let text = format!(
                "{{\"kind\":\"List\",\"items\":[{}{},{{}}]}}",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert!(split_fast(&text).is_some(), "{depth}");
            fast_agrees(&text);
        }
    }

    #[test]
    fn cutting_any_case_anywhere_agrees() {
        // Every prefix of every case, and every case with one byte
        // changed to a structural character: truncations and stray
        // delimiters are the usual broken input.
        for case in CASES {
            for cut in (0..=case.len()).filter(|&i| case.is_char_boundary(i)) {
                fast_agrees(&case[..cut]);
                for c in ["}", "]", ",", "\"", "\\", ":", "0"] {
                    let mut broken = case.to_string();
                    if cut < case.len() && case.is_char_boundary(cut + 1) {
                        broken.replace_range(cut..cut + 1, c);
                        fast_agrees(&broken);
                    }
                }
            }
        }
    }

    /// Heads that [`head_plain`] reads must equal serde's reading.
    fn heads_agree(text: &str) {
        let key = |h: &Head<'_>| {
            (
                h.api_version.as_deref().map(str::to_string),
                h.kind.as_deref().map(str::to_string),
                h.metadata.as_ref().map(|m| {
                    (
                        m.name.as_deref().map(str::to_string),
                        m.namespace.as_deref().map(str::to_string),
                    )
                }),
                h.secret_type.as_deref().map(str::to_string),
            )
        };
        if !is_valid(text) {
            return;
        }
        if let Some(plain) = head_plain(text) {
            let serde = head_serde(text);
            assert_eq!(Some(key(&plain)), serde.as_ref().map(key), "{text}");
        }
    }

    #[test]
    fn plain_heads_equal_serde_heads() {
        let cases = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"b"},"spec":{}}"#,
            r#"{"addressType":"IPv4","apiVersion":"discovery.k8s.io/v1","endpoints":[{"a":"}"}],"kind":"EndpointSlice","metadata":{"labels":{"x":"y"},"name":"s"}}"#,
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"t"},"data":{},"type":"kubernetes.io/tls"}"#,
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"t"}}"#,
            r#"{"kind":"Pod","kind":"Service","apiVersion":"v1","metadata":{}}"#,
            r#"{"kind":null,"apiVersion":"v1","metadata":null}"#,
            r#"{"kind":"Pod","apiVersion":1,"metadata":{}}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","name":"b"}}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":["a","b"]}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":null,"namespace":"n"}}"#,
            r#"{"kind":"P\u006fd","apiVersion":"v1","metadata":{"name":"a"}}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"n\u0061me":"a"}}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a\"b"}}"#,
            r#"{ "kind" : "Pod" , "apiVersion" : "v1" , "metadata" : { "name" : "a" } }"#,
            r#"{}"#,
            r#"[]"#,
            r#""Pod""#,
            r#"{"spec":{"x":[1,2,{"y":null}]},"kind":"Pod"}"#,
        ];
        for case in cases {
            heads_agree(case);
        }
        assert!(head_plain(cases[0]).is_some());
        assert!(head_plain(cases[1]).is_some());
        assert!(head_plain(cases[10]).is_none(), "escapes go to serde");
    }
}
