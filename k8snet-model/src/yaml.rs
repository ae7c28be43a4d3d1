//! Reading and writing manifest text: YAML (through `serde-saphyr`, kept
//! behind this module so it can be swapped) and JSON (through `serde_json`,
//! which is much faster, so JSON input takes a fast path).
//!
//! Output of this module is plain: one [`RawDoc`] per object with the line
//! it starts on; `kind: List` (and `*List`) documents are flattened into
//! their items, each with its own line.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::json;

/// One object's raw body and the line it starts on.
#[derive(Debug)]
pub(crate) struct RawDoc<'a> {
    pub(crate) line: u32,
    pub(crate) body: Body<'a>,
}

/// An object's body: a parsed value (YAML), or the JSON text itself, which
/// decodes straight into the typed object without building a tree first.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// A value parsed from YAML.
    Value(Value),
    /// JSON text of one value, known to be valid.
    Json(&'a str),
    /// JSON text of one list item, not validated yet (see
    /// [`crate::json::split_fast`]): the loader validates it, and if it is
    /// not valid JSON, splits the whole text again with [`parse_checked`].
    JsonUnchecked(&'a str),
}

/// A parse failure at a line.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub(crate) line: u32,
    pub(crate) message: String,
}

/// Splits text into raw objects, leaving JSON list items to be validated
/// when they are decoded ([`Body::JsonUnchecked`]). A syntax error in one
/// YAML document does not hide the others: on failure the stream is re-read
/// document by document, and every failing document yields its own error.
pub(crate) fn parse(text: &str) -> (Vec<RawDoc<'_>>, Vec<ParseError>) {
    if looks_like_json(text)
        && let Some(docs) = json::split_fast(text)
    {
        return (docs, Vec::new());
    }
    parse_checked(text)
}

fn looks_like_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.starts_with('{') || trimmed.starts_with('[')
}

/// As [`parse`], with every JSON body validated: what the loader falls back
/// to when an unchecked item turns out not to be valid JSON.
pub(crate) fn parse_checked(text: &str) -> (Vec<RawDoc<'_>>, Vec<ParseError>) {
    // Text that is not JSON after all (YAML flow syntax such as `{a: 1}`)
    // falls through to the YAML reader.
    if looks_like_json(text)
        && let Ok(docs) = json::parse_checked(text)
    {
        return (docs, Vec::new());
    }
    match parse_yaml_parallel(text) {
        Ok(docs) => (docs, Vec::new()),
        Err(first) => {
            let chunks = split_documents(text);
            if chunks.len() <= 1 {
                return (Vec::new(), vec![first]);
            }
            let mut docs = Vec::new();
            let mut errors = Vec::new();
            for (offset, chunk) in chunks {
                match parse_yaml(chunk, offset) {
                    Ok(mut d) => docs.append(&mut d),
                    Err(e) => errors.push(e),
                }
            }
            (docs, errors)
        }
    }
}

/// Streams smaller than this are parsed on one thread.
const PARALLEL_MIN_BYTES: usize = 512 * 1024;

/// Parses a large stream as contiguous groups of documents on all cores.
/// A `---` line at column 0 always starts a new document (it even ends a
/// block scalar), so the split cannot cut through a document.
fn parse_yaml_parallel(text: &str) -> Result<Vec<RawDoc<'static>>, ParseError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers < 2 || text.len() < PARALLEL_MIN_BYTES {
        return parse_yaml(text, 0);
    }
    let docs = split_documents(text);
    if docs.len() < workers * 8 {
        return parse_yaml(text, 0);
    }
    let per_group = docs.len().div_ceil(workers);
    let groups: Vec<(u32, &str)> = docs
        .chunks(per_group)
        .map(|g| {
            let (line, first) = g[0];
            let (_, last) = g[g.len() - 1];
            let start = first.as_ptr() as usize - text.as_ptr() as usize;
            let end = last.as_ptr() as usize - text.as_ptr() as usize + last.len();
            (line, &text[start..end])
        })
        .collect();
    let results: Vec<Result<Vec<RawDoc<'static>>, ParseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|(line, group)| scope.spawn(move || parse_yaml(group, line)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.append(&mut r?);
    }
    Ok(out)
}

/// Splits a YAML stream at `---` lines, returning each chunk and the number
/// of lines before it.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0u32;
    let mut pos = 0usize;
    for (line_no, line) in (0u32..).zip(text.split_inclusive('\n')) {
        if (line.starts_with("---") && line[3..].trim().is_empty()) && pos > start {
            out.push((start_line, &text[start..pos]));
            start = pos;
            start_line = line_no;
        }
        pos += line.len();
    }
    if pos > start {
        out.push((start_line, &text[start..pos]));
    }
    out
}

fn yaml_options() -> serde_saphyr::Options {
    // Manifest sets are large (10,000 objects in one stream is normal for
    // `kubectl get -o yaml`); the defaults stop at 1,024 documents. Depth
    // and alias limits keep their defaults: they are what guards against
    // hostile input.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: usize::MAX,
            max_nodes: usize::MAX,
            max_events: usize::MAX,
        },
    }
}

fn parse_yaml(text: &str, line_offset: u32) -> Result<Vec<RawDoc<'static>>, ParseError> {
    let docs: Vec<Spanned<Doc>> = serde_saphyr::from_multiple_with_options(text, yaml_options())
        .map_err(|e| ParseError {
            line: e
                .location()
                .map_or(line_offset + 1, |l| line_offset + l.line() as u32),
            message: first_line(&e.to_string()),
        })?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let line = line_offset + doc.referenced.line() as u32;
        let Doc { fields, items } = doc.value;
        match items {
            Some(items) if is_list(&fields) => out.extend(items.into_iter().map(|i| RawDoc {
                line: line_offset + i.referenced.line() as u32,
                body: Body::Value(i.value),
            })),
            Some(items) => {
                let mut fields = fields;
                fields.insert(
                    "items".into(),
                    Value::Array(items.into_iter().map(|i| i.value).collect()),
                );
                out.push(RawDoc {
                    line,
                    body: Body::Value(Value::Object(fields)),
                });
            }
            None => out.push(RawDoc {
                line,
                body: Body::Value(Value::Object(fields)),
            }),
        }
    }
    Ok(out)
}

/// saphyr's messages carry a rendered snippet after the first line; the
/// loader reports file and line itself.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    // "error: line 3 column 4: msg" → "msg" (the location is reported separately).
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((loc, rest)) if loc.starts_with("line ") => rest.to_string(),
        _ => line.to_string(),
    }
}

fn is_list(fields: &serde_json::Map<String, Value>) -> bool {
    fields
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
}

/// A document: its fields, with `items` kept apart (with positions) in case
/// it is a List.
struct Doc {
    fields: serde_json::Map<String, Value>,
    items: Option<Vec<Spanned<Value>>>,
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Kubernetes object (a mapping with apiVersion and kind)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
                let mut fields = serde_json::Map::new();
                let mut items = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "items" {
                        items = Some(map.next_value()?);
                    } else {
                        let v: Value = map.next_value()?;
                        fields.insert(key, v);
                    }
                }
                Ok(Doc { fields, items })
            }
        }
        d.deserialize_map(DocVisitor)
    }
}

#[cfg(test)]
impl Body<'_> {
    /// The body as a JSON value.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Self::Value(v) => v.clone(),
            Self::Json(raw) | Self::JsonUnchecked(raw) => {
                serde_json::from_str(raw).unwrap_or(Value::Null)
            }
        }
    }
}

/// Writes values as a multi-document YAML stream.
pub(crate) fn to_yaml<T: Serialize>(values: &[T]) -> Result<String, String> {
    serde_saphyr::to_string_multiple(values).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_and_lists_keep_lines() {
        let y = "# c\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: b}\n-   kind: Service\n    spec:\n      ports: [{port: 80}]\n";
        let (docs, errors) = parse(y);
        assert!(errors.is_empty(), "{errors:?}");
        let lines: Vec<u32> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 12, 14]);
        assert_eq!(docs[2].body.to_value()["kind"], "Service");
    }

    #[test]
    fn json_stream_and_list() {
        let j = "{\"kind\":\"Pod\"}\n{\"kind\":\"List\",\"items\":[\n{\"kind\":\"A\"},\n {\"kind\":\"B\"}]}";
        let (docs, errors) = parse(j);
        assert!(errors.is_empty());
        let got: Vec<(u32, String)> = docs
            .iter()
            .map(|d| {
                (
                    d.line,
                    d.body.to_value()["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(u32, String)> = vec![(1, "Pod".into()), (3, "A".into()), (4, "B".into())];
        assert_eq!(got, want);
    }

    #[test]
    fn a_broken_document_does_not_hide_the_others() {
        let y = "kind: A\n---\nkind: [1,\nb: }\n---\nkind: C\n";
        let (docs, errors) = parse(y);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 6);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 3, "{errors:?}");
    }

    #[test]
    fn scalar_documents_are_errors_not_panics() {
        let (docs, errors) = parse("just a string\n");
        assert!(docs.is_empty());
        assert_eq!(errors.len(), 1);
    }
}
