//! Matrix output: an aligned text table, JSON, CSV and Graphviz dot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

use super::{Matrix, MatrixEndpoint};

/// An output format of [`Matrix::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// Rows are sources, columns destinations.
    #[default]
    Table,
    /// `{"endpoints": […], "connections": [{"src","dst","conn"}…]}`.
    Json,
    /// `src,dst,conn` (with explanations: `src,dst,conn,verdict,egress,ingress`
    /// per distinct reason).
    Csv,
    /// A Graphviz digraph, pods grouped by namespace; edges carry what is
    /// allowed.
    Dot,
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "dot" => Ok(Self::Dot),
            _ => Err(Error::Format(s.to_string())),
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Matrix {
    /// Renders the matrix. Every format lists the computed pairs in row
    /// order; JSON, CSV and the table include pairs with no connection,
    /// dot draws only edges that carry something.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
            Format::Dot => self.dot(),
        }
    }

    fn names(&self) -> Vec<String> {
        self.endpoints.iter().map(ToString::to_string).collect()
    }

    fn table(&self) -> String {
        let names = self.names();
        let n = names.len();
        let mut grid: Vec<Vec<String>> = Vec::with_capacity(n + 1);
        let mut header = vec!["from \\ to".to_string()];
        header.extend(names.iter().cloned());
        grid.push(header);
        for (i, name) in names.iter().enumerate() {
            let mut row = vec![name.clone()];
            row.extend((0..n).map(|j| match self.cell(i, j) {
                Some(c) => c.conns.to_string(),
                None => "-".to_string(),
            }));
            grid.push(row);
        }
        let widths: Vec<usize> = (0..=n)
            .map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &grid {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(s, &w)| format!("{s:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        if self.explained {
            for (i, j, c) in self.cells() {
                let _ = writeln!(out, "\n{} => {}:", names[i], names[j]);
                for s in &c.segments {
                    let _ = writeln!(
                        out,
                        "  {} {}: egress: {}; ingress: {}",
                        s.verdict, s.conns, s.egress, s.ingress
                    );
                }
            }
        }
        out
    }

    fn json(&self) -> String {
        let names = self.names();
        let endpoints = self
            .endpoints
            .iter()
            .zip(&names)
            .map(|(e, name)| JsonEndpoint {
                name,
                kind: match e {
                    MatrixEndpoint::Pod(_) => "pod",
                    MatrixEndpoint::External(_) => "external",
                },
            })
            .collect();
        let connections = self
            .cells()
            .map(|(i, j, c)| JsonConnection {
                src: &names[i],
                dst: &names[j],
                conn: c.conns.to_string(),
                explanation: self.explained.then(|| {
                    c.segments
                        .iter()
                        .map(|s| JsonSegment {
                            conn: s.conns.to_string(),
                            verdict: s.verdict.as_str(),
                            egress: &s.egress,
                            ingress: &s.ingress,
                        })
                        .collect()
                }),
            })
            .collect();
        let doc = JsonMatrix {
            endpoints,
            connections,
        };
        let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
        out.push('\n');
        out
    }

    fn csv(&self) -> String {
        let names = self.names();
        let mut out = String::new();
        if self.explained {
            out.push_str("src,dst,conn,verdict,egress,ingress\n");
            for (i, j, c) in self.cells() {
                for s in &c.segments {
                    let fields = [
                        csv_field(&names[i]),
                        csv_field(&names[j]),
                        csv_field(&s.conns.to_string()),
                        s.verdict.to_string(),
                        csv_field(&s.egress),
                        csv_field(&s.ingress),
                    ];
                    out.push_str(&fields.join(","));
                    out.push('\n');
                }
            }
        } else {
            out.push_str("src,dst,conn\n");
            for (i, j, c) in self.cells() {
                let _ = writeln!(
                    out,
                    "{},{},{}",
                    csv_field(&names[i]),
                    csv_field(&names[j]),
                    csv_field(&c.conns.to_string())
                );
            }
        }
        out
    }

    fn dot(&self) -> String {
        let names = self.names();
        let mut out = String::from("digraph k8snet_policy {\n  rankdir=LR;\n");
        let mut by_ns: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            match e {
                MatrixEndpoint::Pod(p) => by_ns
                    .entry(p.namespace.as_str())
                    .or_default()
                    .push((i, p.name.as_str())),
                MatrixEndpoint::External(_) => {
                    let _ = writeln!(out, "  {} [shape=ellipse];", dot_id(&names[i]));
                }
            }
        }
        for (ns, pods) in by_ns {
            let _ = writeln!(
                out,
                "  subgraph {} {{\n    label={};",
                dot_id(&format!("cluster_{ns}")),
                dot_id(ns)
            );
            for (i, pod) in pods {
                let _ = writeln!(
                    out,
                    "    {} [shape=box, label={}];",
                    dot_id(&names[i]),
                    dot_id(pod)
                );
            }
            out.push_str("  }\n");
        }
        for (i, j, c) in self.cells().filter(|(_, _, c)| !c.conns.is_empty()) {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                dot_id(&names[i]),
                dot_id(&names[j]),
                dot_id(&c.conns.to_string())
            );
        }
        out.push_str("}\n");
        out
    }
}

/// The JSON document, with its keys in a fixed, readable order.
#[derive(Serialize)]
struct JsonMatrix<'a> {
    endpoints: Vec<JsonEndpoint<'a>>,
    connections: Vec<JsonConnection<'a>>,
}

#[derive(Serialize)]
struct JsonEndpoint<'a> {
    name: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
struct JsonConnection<'a> {
    src: &'a str,
    dst: &'a str,
    conn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<Vec<JsonSegment<'a>>>,
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    conn: String,
    verdict: &'static str,
    egress: &'a str,
    ingress: &'a str,
}
