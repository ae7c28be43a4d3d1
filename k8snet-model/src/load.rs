//! Loading manifests: files, directories (recursively), readers (stdin);
//! YAML multi-document streams and JSON; `kind: List`. Every object is
//! decoded, defaulted and validated; problems are collected, never fatal.
//! Validation is the apiserver's unless [`LoadOptions`] relax it for local
//! serving.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::defaults::apply_defaults;
use crate::error::{Error, Location};
use crate::json::{self, Head, HeadMeta};
use crate::object::{Kind, Object, ObjectRef};
use crate::validate::validate_with;
use crate::yaml::{self, Body};

/// An object and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Where the object starts.
    pub at: Location,
    /// The defaulted, validated object.
    pub object: Object,
}

/// Something on load that is not an error: a skipped document (an unknown
/// kind, a non-TLS Secret), a field the apiserver accepts although it is
/// most likely a mistake (a NetworkPolicy's repeated `policyTypes` entry),
/// or a loopback or link-local endpoint address accepted under
/// [`LocalEndpoints::Warn`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// Where.
    pub at: Location,
    /// What was skipped and why, or the object, field path and address
    /// accepted (`EndpointSlice shop/web: endpoints[0].addresses[0]:
    /// 127.0.0.1 is a loopback address (accepted for local serving)`).
    pub message: String,
    /// For a skipped document, why, and the object it names when it is of
    /// a kind this crate reads; `None` for the other warnings.
    pub skipped: Option<Skipped>,
}

/// Why a document was skipped (see [`Warning::skipped`]).
///
/// A caller that keeps objects across loads (a server re-reading its
/// files) can tell from [`Skipped::object`] that a document still names
/// an object it holds, in a form the apiserver would refuse as an update
/// of that object: a Secret's `type` is immutable, and an apiVersion the
/// apiserver does not serve changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skipped {
    /// A kind this crate does not read: an unknown `kind`, or a known one
    /// of another API group.
    Kind,
    /// A kind this crate reads, of its API group, under an apiVersion it
    /// does not read (`networking.k8s.io/v1beta1` for an Ingress).
    #[non_exhaustive]
    ApiVersion {
        /// The object the document names.
        object: ObjectRef,
        /// The apiVersion as written.
        api_version: String,
    },
    /// A Secret whose type is not `kubernetes.io/tls`.
    #[non_exhaustive]
    SecretType {
        /// The Secret the document names.
        object: ObjectRef,
        /// The type as written (`Opaque` when absent).
        secret_type: String,
    },
}

impl Skipped {
    /// The object the skipped document names, when it is of a kind this
    /// crate reads.
    pub fn object(&self) -> Option<&ObjectRef> {
        match self {
            Self::Kind => None,
            Self::ApiVersion { object, .. } | Self::SecretType { object, .. } => Some(object),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// What the loader does with endpoint addresses the apiserver refuses
/// although a backend on this host can listen on them: loopback
/// (127.0.0.0/8, `::1`) and link-local (169.254.0.0/16, fe80::/10)
/// addresses in an EndpointSlice's `endpoints[].addresses`.
///
/// Unspecified (`0.0.0.0`, `::`) and multicast addresses stay errors in
/// every mode: nothing can be reached at them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LocalEndpoints {
    /// Refuse the object, as the apiserver does (the default; what
    /// `validate` reports).
    #[default]
    Refuse,
    /// Keep the object and record one [`Warning`] per such address (file,
    /// line, object, field path): how a first local run points Services
    /// at backends on `127.0.0.1`. Any other error still refuses the
    /// object.
    Warn,
}

/// How [`Manifests`] loads: apiserver-exact by default.
///
/// ```
/// use k8snet_model::{LoadOptions, LocalEndpoints, Manifests};
/// let slice = "
/// apiVersion: discovery.k8s.io/v1
/// kind: EndpointSlice
/// metadata: {name: web-local, namespace: shop, labels: {kubernetes.io/service-name: web}}
/// addressType: IPv4
/// endpoints: [{addresses: [127.0.0.1]}]
/// ports: [{name: http, port: 8080}]
/// ";
/// // As the apiserver: refused.
/// let mut strict = Manifests::new();
/// strict.load_str("local.yaml", slice);
/// assert!(strict.objects().is_empty());
/// assert_eq!(strict.errors().len(), 1);
///
/// // For local serving: kept, with a warning.
/// let options = LoadOptions::new().local_endpoints(LocalEndpoints::Warn);
/// let mut local = Manifests::with_options(options);
/// local.load_str("local.yaml", slice);
/// assert_eq!(local.objects().len(), 1);
/// assert!(local.errors().is_empty());
/// assert_eq!(
///     local.warnings()[0].to_string(),
///     "local.yaml:2: EndpointSlice shop/web-local: endpoints[0].addresses[0]: \
///      127.0.0.1 is a loopback address (accepted for local serving)"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    local_endpoints: LocalEndpoints,
}

impl LoadOptions {
    /// The apiserver's rules, exactly.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to do with loopback and link-local endpoint addresses.
    #[must_use]
    pub fn local_endpoints(mut self, mode: LocalEndpoints) -> Self {
        self.local_endpoints = mode;
        self
    }

    /// The mode set by [`LoadOptions::local_endpoints`].
    pub fn local_endpoints_mode(&self) -> LocalEndpoints {
        self.local_endpoints
    }
}

/// A set of loaded manifests: the valid objects, every error, every warning.
///
/// ```
/// use k8snet_model::Manifests;
/// let mut m = Manifests::new();
/// m.load_str("web.yaml", "
/// apiVersion: v1
/// kind: Service
/// metadata: {name: web}
/// spec:
///   selector: {app: web}
///   ports: [{port: 80}, {port: 70000}]
/// ");
/// assert!(m.objects().is_empty());
/// let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
/// assert!(errors.iter().any(|e| e.starts_with("web.yaml:2: Service default/web: spec.ports[1].port: 70000")));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    objects: Vec<Loaded>,
    errors: Vec<Error>,
    warnings: Vec<Warning>,
    /// Every loaded object's reference (a map, for its entry API).
    seen: HashMap<ObjectRef, ()>,
    options: LoadOptions,
}

/// File extensions read when walking a directory.
pub const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

impl Manifests {
    /// An empty set that validates as the apiserver does.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set that loads with `options` (see [`LoadOptions`]).
    pub fn with_options(options: LoadOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// The options this set loads with.
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    /// Loads a file, a directory (recursively, `.yaml`/`.yml`/`.json`, in
    /// name order) or, for `-`, standard input.
    pub fn load_path(&mut self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => self.load_str("<stdin>", &text),
                Err(e) => self.io_error(path, &e),
            }
            return;
        }
        match std::fs::metadata(path) {
            Ok(md) if md.is_dir() => {
                for file in walk(path, &mut self.errors) {
                    self.load_file(&file);
                }
            }
            Ok(_) => self.load_file(path),
            Err(e) => self.io_error(path, &e),
        }
    }

    fn load_file(&mut self, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.load_str(&path.display().to_string(), &text),
                Err(_) => self.errors.push(Error::Parse {
                    at: Location::new(path.display().to_string(), 0),
                    message: "the file is not UTF-8 text".into(),
                }),
            },
            Err(e) => self.io_error(path, &e),
        }
    }

    fn io_error(&mut self, path: &Path, e: &std::io::Error) {
        self.errors.push(Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
    }

    /// Loads everything a reader yields, reporting it under `file`.
    pub fn load_reader(&mut self, file: &str, mut reader: impl Read) {
        let mut bytes = Vec::new();
        if let Err(e) = reader.read_to_end(&mut bytes) {
            self.io_error(Path::new(file), &e);
            return;
        }
        match String::from_utf8(bytes) {
            Ok(text) => self.load_str(file, &text),
            Err(_) => self.errors.push(Error::Parse {
                at: Location::new(file, 0),
                message: "the input is not UTF-8 text".into(),
            }),
        }
    }

    /// Loads YAML or JSON text, reporting it under `file`.
    pub fn load_str(&mut self, file: &str, text: &str) {
        let file: Arc<str> = Arc::from(file);
        let (docs, mut parse_errors) = yaml::parse(text);
        let mut processed = process_all(&file, docs, self.options);
        if processed.iter().any(|p| matches!(p, Processed::NotJson(_))) {
            // A JSON list item the fast split did not validate is broken:
            // split again the slow way, which judges the text as a whole
            // (and may read it as YAML).
            let (docs, errors) = yaml::parse_checked(text);
            parse_errors = errors;
            processed = process_all(&file, docs, self.options);
        }
        for e in parse_errors {
            self.errors.push(Error::Parse {
                at: Location::new(file.clone(), e.line),
                message: e.message,
            });
        }
        // Most documents are valid objects: no growth while merging.
        self.objects.reserve(processed.len());
        self.seen.reserve(processed.len());
        for p in processed {
            self.merge(p);
        }
    }

    /// Decodes, defaults and validates one object given as a JSON value.
    pub fn load_value(&mut self, at: Location, value: Value) {
        self.merge(process(at, Body::Value(value), self.options));
    }

    /// Adds one processed document, refusing a second object of the same
    /// kind, namespace and name.
    fn merge(&mut self, processed: Processed) {
        use std::collections::hash_map::Entry;
        match processed {
            Processed::Valid(valid) => {
                let Valid {
                    at,
                    object,
                    reference,
                    warnings,
                } = *valid;
                match self.seen.entry(reference) {
                    Entry::Vacant(e) => {
                        e.insert(());
                        self.objects.push(Loaded { at, object });
                        self.warnings.extend(warnings);
                    }
                    Entry::Occupied(e) => self.errors.push(Error::Invalid {
                        at,
                        object: e.key().clone(),
                        error: crate::FieldError::new(
                            crate::FieldErrorKind::Duplicate,
                            "metadata.name",
                            "an object of this kind, namespace and name was already loaded",
                        ),
                    }),
                }
            }
            Processed::Errors(errors) => self.errors.extend(errors),
            Processed::Skipped(warning) => self.warnings.push(warning),
            // Only unchecked JSON yields this, and `load_str` splits such
            // text again with every body checked.
            Processed::NotJson(at) => self.errors.push(Error::Parse {
                at,
                message: "invalid JSON".into(),
            }),
        }
    }

    /// The valid objects, in load order.
    pub fn objects(&self) -> &[Loaded] {
        &self.objects
    }

    /// Every error, in load order.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// Every warning, in load order: skipped documents, accepted fields
    /// that are most likely mistakes, and the loopback or link-local
    /// endpoint addresses accepted under [`LocalEndpoints::Warn`].
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The valid objects, without their locations.
    pub fn into_objects(self) -> Vec<Object> {
        self.objects.into_iter().map(|l| l.object).collect()
    }

    /// Writes the valid objects as a multi-document YAML stream that loads
    /// back to equal objects.
    ///
    /// # Errors
    /// Only if the YAML writer fails, which it does not for these types.
    pub fn to_yaml(&self) -> Result<String, Error> {
        let values: Vec<Value> = self.objects.iter().map(|l| l.object.to_value()).collect();
        yaml::to_yaml(&values).map_err(|message| Error::Parse {
            at: Location::new("<output>", 0),
            message,
        })
    }

    /// Writes the valid objects as a JSON `List`.
    pub fn to_json(&self) -> String {
        let items: Vec<Value> = self.objects.iter().map(|l| l.object.to_value()).collect();
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }
}

/// Below this many objects per core, spreading the work costs more than it saves.
const PARALLEL_MIN_OBJECTS: usize = 1_000;

/// Decodes, defaults and validates documents; large inputs are spread over
/// the available cores (the work is independent per object), and the
/// results come back in input order so errors and duplicates come out as if
/// sequential.
fn process_all(
    file: &Arc<str>,
    docs: Vec<yaml::RawDoc<'_>>,
    options: LoadOptions,
) -> Vec<Processed> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(docs.len() / PARALLEL_MIN_OBJECTS)
        .max(1);
    let run = |chunk: Vec<yaml::RawDoc<'_>>| -> Vec<Processed> {
        chunk
            .into_iter()
            .map(|doc| process(Location::new(file.clone(), doc.line), doc.body, options))
            .collect()
    };
    if workers == 1 {
        return run(docs);
    }
    let chunk = docs.len().div_ceil(workers);
    let mut docs = docs.into_iter();
    let mut chunks: Vec<Vec<yaml::RawDoc<'_>>> = (0..workers)
        .map(|_| docs.by_ref().take(chunk).collect())
        .collect();
    // This thread takes the first chunk itself.
    let first = chunks.remove(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(|| run(chunk)))
            .collect();
        let mut out = run(first);
        out.reserve(chunk * handles.len());
        for h in handles {
            out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

/// A valid object, ready to merge.
struct Valid {
    at: Location,
    object: Object,
    reference: ObjectRef,
    /// Accepted local endpoints.
    warnings: Vec<Warning>,
}

/// One document after decoding, defaulting and validation.
enum Processed {
    Valid(Box<Valid>),
    Errors(Vec<Error>),
    Skipped(Warning),
    /// An unchecked JSON list item that is not valid JSON.
    NotJson(Location),
}

fn process(at: Location, body: Body<'_>, options: LoadOptions) -> Processed {
    let unchecked = match body {
        Body::JsonUnchecked(text) => Some(text),
        _ => None,
    };
    let decoded = decode(&at, body);
    // Only a successful decode has read all of an unchecked item; anything
    // else is reported only if the item is valid JSON.
    if let Some(text) = unchecked
        && !matches!(decoded, Ok(Decoded::Object(_)))
        && !json::is_valid(text)
    {
        return Processed::NotJson(at);
    }
    match decoded {
        Ok(Decoded::Object(mut object)) => {
            apply_defaults(&mut object);
            let findings = validate_with(&object, options.local_endpoints);
            let reference = object.reference();
            if findings.errors.is_empty() {
                // Accepted problems are reported only for objects that are
                // kept; a refused object's report is its errors.
                let warnings = findings
                    .accepted
                    .into_iter()
                    .map(|accepted| Warning {
                        at: at.clone(),
                        message: format!("{reference}: {accepted}"),
                        skipped: None,
                    })
                    .collect();
                return Processed::Valid(Box::new(Valid {
                    at,
                    object,
                    reference,
                    warnings,
                }));
            }
            Processed::Errors(
                findings
                    .errors
                    .into_iter()
                    .map(|error| Error::Invalid {
                        at: at.clone(),
                        object: reference.clone(),
                        error,
                    })
                    .collect(),
            )
        }
        Ok(Decoded::Skipped(message, skipped)) => Processed::Skipped(Warning {
            at,
            message,
            skipped: Some(skipped),
        }),
        Err(e) => Processed::Errors(vec![*e]),
    }
}

#[allow(clippy::large_enum_variant)] // transient, one per document
enum Decoded {
    Object(Object),
    Skipped(String, Skipped),
}

/// The API group of an apiVersion (`""` for the core group's `v1`).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Whether a document of `kind` under `api_version` names the same
/// resource as `kind` under the apiVersion this crate reads: same group,
/// another version — or `extensions/v1beta1`, where the apiserver once
/// served Ingress and NetworkPolicy.
fn same_resource(kind: Kind, api_version: &str) -> bool {
    group_of(api_version) == group_of(kind.api_version())
        || (api_version == "extensions/v1beta1"
            && matches!(kind, Kind::Ingress | Kind::NetworkPolicy))
}

fn head_of_value(value: &Value) -> Option<Head<'_>> {
    let map = value.as_object()?;
    fn s(v: Option<&Value>) -> Option<std::borrow::Cow<'_, str>> {
        v.and_then(Value::as_str).map(std::borrow::Cow::Borrowed)
    }
    let meta = map.get("metadata");
    Some(Head {
        api_version: s(map.get("apiVersion")),
        kind: s(map.get("kind")),
        metadata: Some(HeadMeta {
            name: s(meta.and_then(|m| m.get("name"))),
            namespace: s(meta.and_then(|m| m.get("namespace"))),
        }),
        secret_type: s(map.get("type")),
    })
}

fn decode(at: &Location, body: Body<'_>) -> Result<Decoded, Box<Error>> {
    let not_an_object = || {
        Box::new(Error::Document {
            at: at.clone(),
            message: "a manifest must be a mapping with apiVersion and kind".into(),
        })
    };
    let head = match &body {
        Body::Value(v) => head_of_value(v).ok_or_else(not_an_object)?,
        Body::Json(text) | Body::JsonUnchecked(text) => {
            json::head(text).ok_or_else(not_an_object)?
        }
    };
    let kind_str = head.kind.as_deref().unwrap_or_default();
    let api_version = head.api_version.as_deref().unwrap_or_default();
    let (name, namespace) = head
        .metadata
        .as_ref()
        .map(|m| {
            (
                m.name.as_deref().unwrap_or_default(),
                m.namespace.as_deref(),
            )
        })
        .unwrap_or_default();
    if kind_str.is_empty() {
        return Err(Box::new(Error::Document {
            at: at.clone(),
            message: "kind: Required value".into(),
        }));
    }
    let Some(kind) = Kind::from_kind(kind_str) else {
        return Ok(Decoded::Skipped(
            format!("skipping {kind_str} (apiVersion {api_version:?}): not a kind k8snet reads"),
            Skipped::Kind,
        ));
    };
    // Built only when needed: it names the object in skips and errors.
    let reference = || ObjectRef {
        kind,
        namespace: kind.is_namespaced().then(|| {
            namespace
                .unwrap_or(crate::meta::DEFAULT_NAMESPACE)
                .to_string()
        }),
        name: name.to_string(),
    };
    if api_version != kind.api_version() {
        let message = format!(
            "skipping {kind_str} with apiVersion {api_version:?}: k8snet reads {kind} as {}",
            kind.api_version()
        );
        let skipped = if same_resource(kind, api_version) {
            Skipped::ApiVersion {
                object: reference(),
                api_version: api_version.to_string(),
            }
        } else {
            Skipped::Kind
        };
        return Ok(Decoded::Skipped(message, skipped));
    }
    if kind == Kind::Secret {
        let ty = head.secret_type.as_deref().unwrap_or("Opaque");
        if ty != crate::core::SECRET_TYPE_TLS {
            let object = reference();
            return Ok(Decoded::Skipped(
                format!(
                    "skipping {object} of type {ty:?}: only kubernetes.io/tls Secrets are used"
                ),
                Skipped::SecretType {
                    object,
                    secret_type: ty.to_string(),
                },
            ));
        }
    }
    let error = |reference: ObjectRef, e: crate::object::DecodeError| {
        Box::new(Error::Decode {
            at: at.clone(),
            object: reference,
            path: e.path,
            message: e.message,
        })
    };
    if let Body::Json(text) | Body::JsonUnchecked(text) = body {
        return Object::decode_json(kind, text)
            .map(Decoded::Object)
            .map_err(|e| error(reference(), e));
    }
    // The head borrows the value that decoding consumes.
    let reference = reference();
    let decoded = match body {
        Body::Value(v) => Object::decode(kind, v),
        Body::Json(text) | Body::JsonUnchecked(text) => Object::decode_json(kind, text),
    };
    decoded
        .map(Decoded::Object)
        .map_err(|e| error(reference, e))
}

/// Manifest files below `dir`, recursively, sorted by path.
fn walk(dir: &Path, errors: &mut Vec<Error>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                errors.push(Error::Io {
                    path: d,
                    message: e.to_string(),
                });
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => {
                    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                    if MANIFEST_EXTENSIONS.contains(&ext) {
                        out.push(path);
                    }
                }
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
