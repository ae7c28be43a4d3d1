//! The access log as the tests see it: a global `tracing` subscriber (the
//! proxy's workers run on their own threads, so it has to be the global
//! one) that records every event of the `k8snet_ingress::access` target,
//! field by field. For test binaries of their own (`#[path]` module), as
//! a global subscriber can be installed once per process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One event: field → value, plus `level`.
pub type Fields = BTreeMap<String, String>;

/// Every access-log event seen so far; the first call installs the
/// subscriber.
pub fn events() -> &'static Arc<Mutex<Vec<Fields>>> {
    static EVENTS: OnceLock<Arc<Mutex<Vec<Fields>>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        events
    })
}

/// The events whose path is `path`.
pub fn logged(path: &str) -> Vec<Fields> {
    events()
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.get("path").is_some_and(|p| p == path))
        .cloned()
        .collect()
}

struct Capture(Arc<Mutex<Vec<Fields>>>);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "k8snet_ingress::access" {
            return;
        }
        let mut fields = Record(Fields::new());
        event.record(&mut fields);
        fields
            .0
            .insert("level".into(), event.metadata().level().to_string());
        self.0.lock().unwrap().push(fields.0);
    }
}

struct Record(Fields);

impl Visit for Record {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}
