//! Criterion benches of the engine: wtpool against deadpool, bb8 and a
//! `Mutex<Vec>` floor, and the scaling cases.
//!
//! ```sh
//! cargo bench --bench engine                 # all of them
//! cargo bench --bench engine -- contended    # a filter, as criterion takes it
//! ```
//!
//! One operation is a get and a drop of a trivial object; criterion reports
//! the time of one. `cargo bench --bench table` prints the same workloads
//! side by side with ratios (see docs/benchmarks.md).

mod common;

use std::time::Duration;

use common::{AnyPool, Kind, Peer, Position, Runtimes};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const POOLS: [(Peer, Kind); 5] = [
    (Peer::Wtpool, Kind::Tokio),
    (Peer::Wtpool, Kind::Smol),
    (Peer::Deadpool, Kind::Tokio),
    (Peer::Deadpool, Kind::Smol),
    (Peer::Bb8, Kind::Tokio),
];

fn label(peer: Peer, kind: Kind) -> String {
    format!("{}/{}", peer.name(), format!("{kind:?}").to_lowercase())
}

fn peers(c: &mut Criterion) {
    let rts = Runtimes::new();

    let mut group = c.benchmark_group("uncontended");
    group.bench_function("floor/mutex-vec", |b| b.iter_custom(common::floor));
    for (peer, kind) in POOLS {
        let pool = AnyPool::make(&rts, peer, kind, 8);
        group.bench_function(label(peer, kind), |b| {
            b.iter_custom(|iters| pool.uncontended(&rts, kind, iters))
        });
    }
    group.finish();

    for (size, tasks) in [(8, 64), (16, 32)] {
        let mut group = c.benchmark_group(format!("contended/pool{size}-tasks{tasks}"));
        for (peer, kind) in POOLS {
            let pool = AnyPool::make(&rts, peer, kind, size);
            group.bench_function(label(peer, kind), |b| {
                b.iter_custom(|iters| pool.contended(&rts, kind, tasks, iters))
            });
        }
        group.finish();
    }
}

fn scaling(c: &mut Criterion) {
    let rts = Runtimes::new();

    let mut group = c.benchmark_group("scaling/pool-size");
    for size in [1, 64, 4096] {
        group.bench_with_input(BenchmarkId::new("machine", size), &size, |b, &size| {
            b.iter_custom(|iters| common::machine_uncontended(size, iters))
        });
        group.bench_with_input(BenchmarkId::new("wtpool-tokio", size), &size, |b, &size| {
            b.iter_custom(|iters| common::async_uncontended_size(&rts, size, iters))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("scaling/waiters");
    for waiters in [10, 1000, 10_000] {
        group.bench_with_input(BenchmarkId::new("machine", waiters), &waiters, |b, &w| {
            b.iter_custom(|iters| common::machine_handoff(w, iters))
        });
        group.bench_with_input(
            BenchmarkId::new("wtpool-tokio", waiters),
            &waiters,
            |b, &w| b.iter_custom(|iters| common::async_handoff(&rts, w, iters)),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("scaling/cancel-of-10000");
    for (name, position) in [("middle", Position::Middle), ("end", Position::End)] {
        group.bench_function(BenchmarkId::new("machine", name), |b| {
            b.iter_custom(|iters| common::machine_cancel(10_000, position, iters))
        });
        group.bench_function(BenchmarkId::new("wtpool-tokio", name), |b| {
            b.iter_custom(|iters| common::async_cancel(&rts, 10_000, position, iters))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = peers, scaling
}
criterion_main!(benches);
