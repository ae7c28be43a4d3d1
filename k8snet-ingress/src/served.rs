//! [`Served`]: the objects a server reads from manifest files, kept across
//! reloads as the apiserver keeps objects across refused updates.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use k8snet_model::{Cluster, Manifests, Object, ObjectRef};

/// The objects a server (`k8snet ingress serve`) serves from its manifest
/// files, across reloads.
///
/// A reload re-reads the files. The apiserver refuses an invalid update
/// and keeps serving the stored object; so here an object that is now
/// invalid (it fails decoding or validation) keeps its previous version,
/// and so does every object of a file that cannot be read or parsed as a
/// whole. Objects that are gone from the files are deleted; new and
/// changed valid objects are taken.
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
    /// The error, as the manifests reported it.
    pub error: k8snet_model::Error,
    /// The objects kept at their previous version because of it.
    pub kept: Vec<ObjectRef>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kept.as_slice() {
            [] => write!(f, "{} (left out)", self.error),
            [one] => write!(f, "{} (the previous version of {one} is kept)", self.error),
            many => write!(
                f,
                "{} (the previous versions of {} objects are kept)",
                self.error,
                many.len()
            ),
        }
    }
}

impl Served {
    /// Nothing served yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a fresh load of the manifest files: their valid objects
    /// replace the served ones; a served object that is now invalid, or
    /// that sat in a file that could not be read or parsed, keeps its
    /// previous version; the other served objects no longer in the files
    /// are deleted. Returns every error of the load with what it kept (the
    /// first load keeps nothing: invalid objects are left out).
    pub fn reload(&mut self, manifests: &Manifests) -> Vec<ReloadError> {
        let mut next: BTreeMap<ObjectRef, (Object, Arc<str>)> = manifests
            .objects()
            .iter()
            .map(|l| (l.object.reference(), (l.object.clone(), l.at.file.clone())))
            .collect();
        let mut out = Vec::new();
        for error in manifests.errors() {
            let mut kept = Vec::new();
            let mut keep = |r: &ObjectRef, prev: &(Object, Arc<str>)| {
                if !next.contains_key(r) {
                    next.insert(r.clone(), prev.clone());
                    kept.push(r.clone());
                }
            };
            match error {
                // One object is invalid: keep its previous version.
                k8snet_model::Error::Decode { object, .. }
                | k8snet_model::Error::Invalid { object, .. } => {
                    if let Some(prev) = self.objects.get(object) {
                        keep(object, prev);
                    }
                }
                // A whole file (or a directory) could not be read, or a
                // document's kind is unknown: keep what came from there.
                k8snet_model::Error::Parse { at, .. }
                | k8snet_model::Error::Document { at, .. } => {
                    for (r, prev) in &self.objects {
                        if prev.1 == at.file {
                            keep(r, prev);
                        }
                    }
                }
                k8snet_model::Error::Io { path, .. } => {
                    for (r, prev) in &self.objects {
                        if Path::new(&*prev.1).starts_with(path) {
                            keep(r, prev);
                        }
                    }
                }
                _ => {}
            }
            out.push(ReloadError {
                error: error.clone(),
                kept,
            });
        }
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
}
