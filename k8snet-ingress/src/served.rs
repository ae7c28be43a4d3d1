//! [`Served`]: the objects a server reads from manifest files, kept across
//! reloads as the apiserver keeps objects across refused updates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use k8snet_model::{
    Cluster, FieldError, FieldErrorKind, Manifests, Object, ObjectRef, Skipped, Warning,
};

/// The objects a server (`k8snet ingress serve`) serves from its manifest
/// files, across reloads.
///
/// A reload re-reads the files. The apiserver refuses an invalid update
/// and keeps serving the stored object; so here an object that is now
/// invalid (it fails decoding or validation) keeps its previous version,
/// and so does every object of a file that cannot be read or parsed as a
/// whole. So does an object whose document the loader skips although it
/// still names the object in a form the apiserver would refuse as an
/// update: a TLS Secret whose `type` changed (the type is immutable), or
/// an object rewritten under an apiVersion that is not served
/// (`networking.k8s.io/v1beta1` for an Ingress). Objects that are gone
/// from the files are deleted; new and changed valid objects are taken.
///
/// ```
/// use k8snet_ingress::Served;
/// use k8snet_model::Manifests;
///
/// let load = |yaml: &str| {
///     let mut m = Manifests::new();
///     m.load_str("shop.yaml", yaml);
///     m
/// };
/// let good = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";
/// let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 0}]}\n";
/// let mut served = Served::new();
/// assert!(served.reload(&load(good)).is_empty());
/// let errors = served.reload(&load(bad));
/// assert_eq!(errors[0].kept.len(), 1, "{}", errors[0]);
/// let svc = served.cluster().services().next().cloned().unwrap();
/// assert_eq!(svc.spec.ports[0].port, 80);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// Each object with the file it was read from.
    objects: BTreeMap<ObjectRef, (Object, Arc<str>)>,
}

/// A manifest error met by [`Served::reload`], and the objects whose
/// previous version it kept (none: the object is left out).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReloadError {
    /// The error, as the manifests reported it, or the update the
    /// apiserver would refuse (a Secret's changed `type`, an apiVersion it
    /// does not serve) for a document the manifests only skipped.
    pub error: k8snet_model::Error,
    /// The objects it concerns that are kept at their previous version:
    /// every error of such an object names it, not only the first.
    pub kept: Vec<ObjectRef>,
    /// The object it names is served from another document of this load
    /// (the error is about a second copy, which is left out).
    served_elsewhere: Option<ObjectRef>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kept.as_slice(), &self.served_elsewhere) {
            ([], Some(r)) => {
                let duplicate = matches!(
                    &self.error,
                    k8snet_model::Error::Invalid { error, .. }
                        if error.kind == FieldErrorKind::Duplicate
                );
                let from = if duplicate {
                    "its first copy"
                } else {
                    "another document"
                };
                write!(
                    f,
                    "{} (this copy is left out; {r} is served from {from})",
                    self.error
                )
            }
            ([], None) => write!(f, "{} (left out)", self.error),
            ([one], _) => write!(f, "{} (the previous version of {one} is kept)", self.error),
            (many, _) => write!(
                f,
                "{} (the previous versions of {} objects are kept)",
                self.error,
                many.len()
            ),
        }
    }
}

/// What an error concerns.
enum Concern<'a> {
    /// One object.
    Object(&'a ObjectRef),
    /// The objects read from a file.
    File(&'a str),
    /// The objects read from below a path.
    Below(&'a Path),
    Nothing,
}

impl<'a> Concern<'a> {
    fn of(error: &'a k8snet_model::Error) -> Self {
        match error {
            k8snet_model::Error::Decode { object, .. }
            | k8snet_model::Error::Invalid { object, .. } => Self::Object(object),
            // A whole file could not be parsed, or a document's kind is
            // unknown: what came from there.
            k8snet_model::Error::Parse { at, .. } | k8snet_model::Error::Document { at, .. } => {
                Self::File(&at.file)
            }
            // A file or directory could not be read.
            k8snet_model::Error::Io { path, .. } => Self::Below(path),
            _ => Self::Nothing,
        }
    }

    fn covers(&self, r: &ObjectRef, file: &str) -> bool {
        match self {
            Self::Object(o) => *o == r,
            Self::File(f) => *f == file,
            Self::Below(p) => Path::new(file).starts_with(p),
            Self::Nothing => false,
        }
    }
}

/// The update the apiserver would refuse, for a skipped document that
/// names a served object.
fn refused_update(w: &Warning, served: &Object) -> Option<(ObjectRef, k8snet_model::Error)> {
    let (object, error) = match w.skipped.as_ref()? {
        Skipped::SecretType {
            object,
            secret_type,
            ..
        } => (
            object,
            FieldError::new(
                FieldErrorKind::Invalid,
                "type",
                format!(
                    "{secret_type:?}: field is immutable (the served Secret is of type {:?})",
                    match served {
                        Object::Secret(s) => s.secret_type.as_deref().unwrap_or("Opaque"),
                        _ => "",
                    }
                ),
            ),
        ),
        Skipped::ApiVersion {
            object,
            api_version,
            ..
        } => (
            object,
            FieldError::new(
                FieldErrorKind::NotSupported,
                "apiVersion",
                format!(
                    "{api_version:?} is not served: k8snet reads {} as {}",
                    object.kind,
                    object.kind.api_version()
                ),
            ),
        ),
        _ => return None,
    };
    Some((
        object.clone(),
        k8snet_model::Error::Invalid {
            at: w.at.clone(),
            object: object.clone(),
            error,
        },
    ))
}

impl Served {
    /// Nothing served yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a fresh load of the manifest files: their valid objects
    /// replace the served ones; a served object that is now invalid, that
    /// sat in a file that could not be read or parsed, or whose document
    /// is skipped in a form the apiserver would refuse as an update (see
    /// [`Served`]), keeps its previous version; the other served objects
    /// no longer in the files are deleted. Returns every error of the
    /// load, and each refused update, with what it kept (the first load
    /// keeps nothing: invalid objects are left out).
    pub fn reload(&mut self, manifests: &Manifests) -> Vec<ReloadError> {
        let mut next: BTreeMap<ObjectRef, (Object, Arc<str>)> = manifests
            .objects()
            .iter()
            .map(|l| (l.object.reference(), (l.object.clone(), l.at.file.clone())))
            .collect();
        let mut errors: Vec<k8snet_model::Error> = manifests.errors().to_vec();
        for w in manifests.warnings() {
            let Some(r) = w.skipped.as_ref().and_then(Skipped::object) else {
                continue;
            };
            if next.contains_key(r) {
                continue; // served from a valid document
            }
            if let Some((_, error)) = self
                .objects
                .get(r)
                .and_then(|(prev, _)| refused_update(w, prev))
            {
                errors.push(error);
            }
        }
        // Keep, first, the previous version of every object an error
        // concerns that this load does not provide...
        let mut kept: BTreeSet<ObjectRef> = BTreeSet::new();
        for error in &errors {
            let concern = Concern::of(error);
            for (r, prev) in &self.objects {
                if concern.covers(r, &prev.1) && !next.contains_key(r) {
                    next.insert(r.clone(), prev.clone());
                    kept.insert(r.clone());
                }
            }
        }
        // ...then name, in each error, the kept objects it concerns.
        let loaded: BTreeSet<ObjectRef> = manifests
            .objects()
            .iter()
            .map(|l| l.object.reference())
            .collect();
        let out = errors
            .into_iter()
            .map(|error| {
                let concern = Concern::of(&error);
                let kept_here: Vec<ObjectRef> = kept
                    .iter()
                    .filter(|r| {
                        next.get(*r)
                            .is_some_and(|(_, file)| concern.covers(r, file))
                    })
                    .cloned()
                    .collect();
                let served_elsewhere = match concern {
                    Concern::Object(r) if loaded.contains(r) => Some(r.clone()),
                    _ => None,
                };
                ReloadError {
                    error,
                    kept: kept_here,
                    served_elsewhere,
                }
            })
            .collect();
        self.objects = next;
        out
    }

    /// The served objects as a snapshot.
    pub fn cluster(&self) -> Cluster {
        Cluster::from_objects(self.objects.values().map(|(o, _)| o.clone()))
    }

    /// How many objects are served.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is served.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Manifests {
        let mut m = Manifests::new();
        for (f, y) in files {
            m.load_str(f, y);
        }
        m
    }

    fn svc(name: &str, port: u32) -> String {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    }

    fn ports(s: &Served) -> Vec<(String, i32)> {
        s.cluster()
            .services()
            .map(|s| (s.metadata.name.clone(), s.spec.ports[0].port))
            .collect()
    }

    #[test]
    fn invalid_objects_keep_their_previous_version_and_gone_ones_are_deleted() {
        let mut s = Served::new();
        let first = s.reload(&load(&[(
            "a.yaml",
            &(svc("a", 80) + &svc("b", 81) + &svc("bad", 0)),
        )]));
        // The first load has nothing to keep.
        assert_eq!(first.len(), 1);
        assert!(first[0].kept.is_empty());
        assert!(first[0].to_string().ends_with("(left out)"), "{}", first[0]);
        assert_eq!(ports(&s), [("a".into(), 80), ("b".into(), 81)]);
        // a changes, b breaks, a new c appears: b keeps 81.
        let errors = s.reload(&load(&[(
            "a.yaml",
            &(svc("a", 90) + &svc("b", 0) + &svc("c", 82)),
        )]));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kept.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("the previous version of Service shop/b is kept"),
            "{}",
            errors[0]
        );
        assert_eq!(
            ports(&s),
            [("a".into(), 90), ("b".into(), 81), ("c".into(), 82)]
        );
        // b is removed from the file: deleted.
        assert!(
            s.reload(&load(&[("a.yaml", &(svc("a", 90) + &svc("c", 82)))]))
                .is_empty()
        );
        assert_eq!(ports(&s), [("a".into(), 90), ("c".into(), 82)]);
    }

    #[test]
    fn a_file_that_does_not_parse_keeps_its_objects() {
        let mut s = Served::new();
        s.reload(&load(&[
            ("a.yaml", &svc("a", 80)),
            ("b.yaml", &svc("b", 81)),
        ]));
        let errors = s.reload(&load(&[
            ("a.yaml", "kind: [unclosed\n"),
            ("b.yaml", &svc("b", 91)),
        ]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].kept.len(), 1, "{}", errors[0]);
        assert_eq!(ports(&s), [("a".into(), 80), ("b".into(), 91)]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_document_the_apiserver_would_refuse_as_an_update_keeps_the_object() {
        let tls = "apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: shop}\ntype: kubernetes.io/tls\ndata: {tls.crt: YQ==, tls.key: YQ==}\n";
        let opaque = tls.replace("kubernetes.io/tls", "Opaque");
        let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: shop}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n";
        let old_api = "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: i, namespace: shop}\nspec: {backend: {serviceName: web, servicePort: 80}}\n";
        let mut s = Served::new();
        assert!(
            s.reload(&load(&[("a.yaml", tls), ("b.yaml", ing)]))
                .is_empty()
        );
        assert_eq!(s.len(), 2);
        s.reload(&load(&[("a.yaml", opaque.as_str()), ("b.yaml", old_api)]));
        assert_eq!(s.len(), 2, "a served object was deleted");
    }

    #[test]
    fn every_error_of_a_kept_object_says_it_is_kept() {
        let mut s = Served::new();
        assert!(s.reload(&load(&[("a.yaml", &svc("b", 81))])).is_empty());
        let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\nspec: {ports: [{port: 0}, {port: 0, name: x}]}\n";
        let errors = s.reload(&load(&[("a.yaml", bad)]));
        assert!(errors.len() > 1, "{errors:?}");
        assert_eq!(ports(&s), [("b".into(), 81)]);
        for e in &errors {
            assert!(!e.to_string().ends_with("(left out)"), "{e}");
        }
        let errors = s.reload(&load(&[
            ("a.yaml", &svc("b", 81)),
            ("b.yaml", &svc("b", 82)),
        ]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(ports(&s), [("b".into(), 81)]);
        assert!(
            !errors[0].to_string().ends_with("(left out)"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_refused_update_is_reported_and_the_object_can_still_be_edited_or_deleted() {
        let tls = "apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: shop}\ntype: kubernetes.io/tls\ndata: {tls.crt: YQ==, tls.key: YQ==}\n";
        let opaque = tls.replace("kubernetes.io/tls", "Opaque");
        let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: shop}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n";
        let old_api = ing.replace("networking.k8s.io/v1", "extensions/v1beta1");
        let mut s = Served::new();
        // Skipped on the first load: nothing to keep, nothing refused.
        assert!(s.reload(&load(&[("a.yaml", opaque.as_str())])).is_empty());
        assert!(s.is_empty());
        assert!(
            s.reload(&load(&[("a.yaml", tls), ("b.yaml", ing)]))
                .is_empty()
        );
        let errors = s.reload(&load(&[
            ("a.yaml", opaque.as_str()),
            ("b.yaml", old_api.as_str()),
        ]));
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(
            texts[0].starts_with("a.yaml:1: Secret shop/c: type: \"Opaque\": field is immutable")
                && texts[0].ends_with("(the previous version of Secret shop/c is kept)"),
            "{}",
            texts[0]
        );
        assert!(
            texts[1].starts_with(
                "b.yaml:1: Ingress shop/i: apiVersion: \"extensions/v1beta1\" is not served"
            ) && texts[1].ends_with("(the previous version of Ingress shop/i is kept)"),
            "{}",
            texts[1]
        );
        let key = k8snet_model::NsName::new("shop", "c");
        let c = s.cluster();
        let secret = c.secret(&key).expect("the Secret is served");
        assert_eq!(secret.secret_type.as_deref(), Some("kubernetes.io/tls"));
        // A valid edit is taken; a removed document is deleted.
        let edited = tls.replace("YQ==", "Yg==");
        assert!(s.reload(&load(&[("a.yaml", edited.as_str())])).is_empty());
        assert_eq!(s.len(), 1);
        let c = s.cluster();
        let secret = c.secret(&key).expect("the Secret is served");
        assert_eq!(secret.data.get("tls.crt").map(String::as_str), Some("Yg=="));
    }
}
