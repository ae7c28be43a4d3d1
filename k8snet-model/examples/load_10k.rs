//! Loads (parse, decode, default, validate) and indexes the 10,000-object
//! input of `benches/model.rs`, for wall-clock timing without criterion and
//! for instruction counts under callgrind.
//!
//! ```text
//! # write the input: DIR/mixed.json (one kind: List) and DIR/mixed.yaml
//! cargo run --release -p k8snet-model --example load_10k -- gen DIR
//! # load FILE N times (N = 0 only reads it), print best and median
//! cargo run --release -p k8snet-model --example load_10k -- DIR/mixed.json 15
//! valgrind --tool=callgrind target/release/examples/load_10k DIR/mixed.json 1
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use k8snet_model::{Cluster, Manifests};

#[path = "support/mixed.rs"]
mod mixed;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "gen" => generate(Path::new(dir)),
        [file] => run(file, 1),
        [file, n] => run(file, n.parse().expect("N is a count")),
        _ => {
            eprintln!("usage: load_10k gen DIR | load_10k FILE [N]");
            std::process::exit(2);
        }
    }
}

fn generate(dir: &Path) {
    let json = mixed::mixed_json();
    let mut m = Manifests::new();
    m.load_str("gen.json", &json);
    assert!(m.errors().is_empty(), "{:?}", &m.errors()[..1]);
    let yaml = m.to_yaml().expect("YAML output");
    std::fs::create_dir_all(dir).expect("create DIR");
    std::fs::write(dir.join("mixed.json"), &json).expect("write mixed.json");
    std::fs::write(dir.join("mixed.yaml"), &yaml).expect("write mixed.yaml");
    println!(
        "mixed.json {} bytes, mixed.yaml {} bytes",
        json.len(),
        yaml.len()
    );
}

/// Loads and indexes `text` once; kept out of line so profiles show it.
#[inline(never)]
fn load_and_index(file: &str, text: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str(file, text);
    assert!(m.errors().is_empty(), "{:?}", &m.errors()[..1]);
    assert_eq!(m.objects().len(), 10_000);
    Cluster::from_objects(m.into_objects())
}

fn run(file: &str, n: usize) {
    let text = std::fs::read_to_string(file).expect("read FILE");
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let cluster = std::hint::black_box(load_and_index(file, &text));
            let took = start.elapsed();
            drop(cluster);
            took
        })
        .collect();
    times.sort();
    if let (Some(best), Some(median)) = (times.first(), times.get(n / 2)) {
        println!(
            "{file}: {} bytes, {n} runs, best {:.1} ms, median {:.1} ms",
            text.len(),
            best.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3
        );
    }
}
