//! Applying map elements to the kernel, in a network namespace made for the
//! run: 10,000 elements into an empty named map (one transaction), and a 1%
//! change to them (100 elements replaced). Needs root; skips otherwise.
//!
//! `cargo bench -p k8snet-nft --features linux --bench elements`

#[cfg(all(feature = "linux", target_os = "linux"))]
mod kernel {
    use std::hint::black_box;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use criterion::{Criterion, Throughput};
    use k8snet_nft::{
        Batch, DataType, Element, Family, Key, MapValue, Nft, Set, Table, Value, diff,
    };

    const ELEMENTS: u32 = 10_000;
    const TABLE: &str = "k8snet-bench";

    /// A slot map of `ELEMENTS` entries; `shift` changes the backend of
    /// every 100th slot (a 1% change).
    fn table(shift: u32) -> Table {
        let mut map = Set::map(
            vec![DataType::Integer(32)],
            vec![DataType::Ipv4Addr, DataType::InetService],
        );
        for i in 0..ELEMENTS {
            let changed = if i % 100 == 0 { shift } else { 0 };
            let backend = Ipv4Addr::from(0xc612_0000 + (i + changed) % 50_000);
            let value = Key(vec![Value::Ipv4(backend), Value::Port(8080)]);
            let elem = Element {
                value: Some(MapValue::Data(value)),
                ..Element::default()
            };
            map.elements
                .insert(Key::one(Value::Int(u64::from(i))), elem);
        }
        Table::new(Family::Inet, TABLE).with_set("slots", map)
    }

    pub(crate) fn bench(c: &mut Criterion) {
        let tn = k8snet_testnet::Testnet::new("nftbench").expect("test namespace");
        // The socket is opened inside the namespace and stays there.
        let mut nft = tn
            .node()
            .run(Nft::new)
            .expect("enter netns")
            .expect("netlink socket");
        let empty = Table::new(Family::Inet, TABLE).with_set(
            "slots",
            Set::map(
                vec![DataType::Integer(32)],
                vec![DataType::Ipv4Addr, DataType::InetService],
            ),
        );
        let (a, b) = (table(0), table(7));
        let fill = diff(Some(&empty), &a).expect("diff");
        let clear = diff(Some(&a), &empty).expect("diff");
        let (ab, ba) = (
            diff(Some(&a), &b).expect("diff"),
            diff(Some(&b), &a).expect("diff"),
        );
        assert_eq!(fill.element_count(), ELEMENTS as usize);
        assert_eq!(ab.element_count(), 2 * (ELEMENTS as usize / 100));
        nft.apply(&diff(None, &empty).expect("diff"))
            .expect("create the table");

        let mut g = c.benchmark_group("nft_elements");
        g.sample_size(20).measurement_time(Duration::from_secs(10));
        g.throughput(Throughput::Elements(u64::from(ELEMENTS)));
        g.bench_function("apply_10000_elements", |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(nft.apply(&fill).expect("fill"));
                    total += start.elapsed();
                    nft.apply(&clear).expect("clear");
                }
                total
            });
        });
        // 1%: 100 slots get another backend (delete + add of each element).
        nft.apply(&fill).expect("fill");
        g.throughput(Throughput::Elements(u64::from(ELEMENTS / 100)));
        let mut at_a = true;
        g.bench_function("apply_1pct_change_of_10000", |bench| {
            bench.iter(|| {
                let batch: &Batch = if at_a { &ab } else { &ba };
                black_box(nft.apply(batch).expect("change"));
                at_a = !at_a;
            });
        });
        g.finish();
        nft.apply(&Batch::delete_table(Family::Inet, TABLE))
            .expect("delete the table");
    }
}

fn main() {
    if let Some(reason) = k8snet_testnet::skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    #[cfg(all(feature = "linux", target_os = "linux"))]
    {
        let mut c = criterion::Criterion::default().configure_from_args();
        kernel::bench(&mut c);
        c.final_summary();
    }
    #[cfg(not(all(feature = "linux", target_os = "linux")))]
    eprintln!("skipped: build with --features linux to measure the kernel backend");
}
