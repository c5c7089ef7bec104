//! The whole performance table in one run, side by side, with ratios:
//!
//! ```sh
//! cargo bench --bench table                    # 5 rounds, about 2 minutes
//! cargo bench --bench table -- --rounds 9      # more rounds
//! cargo bench --bench table -- --quick         # a tenth of the work, 1 round
//! cargo bench --bench table -- --no-webtransport
//! cargo bench --bench table -- --only engine   # or scaling, or webtransport
//! ```
//!
//! Every row is measured once per round, the rounds one after the other, and
//! the table gives the median of the rounds with the spread (min–max). The
//! engine rows run on a 2-worker multi-thread tokio runtime and on a smol
//! executor run by 2 threads; the WebTransport rows against the loopback echo
//! server (127.0.0.1 only).
//!
//! `--callgrind CASE ITERS` runs only CASE's loop, ITERS times, and prints
//! nothing else: for `valgrind --tool=callgrind` (see docs/benchmarks.md).
//!
//! Started without `--bench` (as `cargo test --benches` does), it makes a
//! quick smoke run without WebTransport instead.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use common::wt::{self, Sample, Target};
use common::{AnyPool, Kind, Peer, Position, Runtimes, ns_per_op};
use wtpool::machine::{Limits, PoolState};
use wtpool_tokio::echo::{EchoServer, EchoServerOptions};

// ----- a heap counter, on only while the memory rows are measured -----

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static HEAP: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            HEAP.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes that `make` leaves allocated (it must not free what it keeps).
fn heap_of<T>(make: impl FnOnce() -> T) -> (T, isize) {
    let before = HEAP.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let made = make();
    COUNTING.store(false, Ordering::Relaxed);
    (made, HEAP.load(Ordering::Relaxed) - before)
}

// ----- settings -----

struct Settings {
    rounds: usize,
    /// Work per row: 1.0 is the default, `--quick` is 0.1.
    scale: f64,
    engine: bool,
    scaling: bool,
    webtransport: bool,
}

impl Settings {
    fn iters(&self, n: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(1)
    }

    fn requests(&self, n: usize) -> usize {
        ((n as f64 * self.scale) as usize).max(common::wt::CLIENTS)
    }
}

const POOLS: [(Peer, Kind); 5] = [
    (Peer::Wtpool, Kind::Tokio),
    (Peer::Wtpool, Kind::Smol),
    (Peer::Deadpool, Kind::Tokio),
    (Peer::Deadpool, Kind::Smol),
    (Peer::Bb8, Kind::Tokio),
];

const CONTENDED: [(usize, usize); 2] = [(8, 64), (16, 32)];

fn label(peer: Peer, kind: Kind) -> String {
    format!("{}/{}", peer.name(), format!("{kind:?}").to_lowercase())
}

/// The key of the bare FIFO pool's figures (`common::BarePool`) on `kind`.
fn bare_label(kind: Kind) -> String {
    format!("bare/{}", format!("{kind:?}").to_lowercase())
}

// ----- the figures of all rounds -----

#[derive(Default)]
struct Figures {
    values: BTreeMap<String, Vec<f64>>,
}

#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Figures {
    fn record(&mut self, key: impl Into<String>, value: f64) {
        self.values.entry(key.into()).or_default().push(value);
    }

    fn stat(&self, key: &str) -> Option<Stat> {
        let mut values = self.values.get(key)?.clone();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    fn median(&self, key: &str) -> f64 {
        self.stat(key).map_or(f64::NAN, |s| s.median)
    }

    /// "123 ns (118–130)", or "–".
    fn cell(&self, key: &str, unit: &str) -> String {
        match self.stat(key) {
            None => "–".into(),
            Some(s) if s.min == s.max => format!("{} {unit}", round(s.median)),
            Some(s) => format!(
                "{} {unit} ({}–{})",
                round(s.median),
                round(s.min),
                round(s.max)
            ),
        }
    }
}

fn round(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

// ----- the rounds -----

fn engine_round(rts: &Runtimes, s: &Settings, f: &mut Figures) {
    let n = s.iters(2_000_000);
    common::floor(n / 10);
    f.record("floor", ns_per_op(common::floor(n), n));

    let n = s.iters(1_000_000);
    for (peer, kind) in POOLS {
        let pool = AnyPool::make(rts, peer, kind, 8);
        pool.uncontended(rts, kind, n / 10);
        let t = pool.uncontended(rts, kind, n);
        f.record(
            format!("uncontended/{}", label(peer, kind)),
            ns_per_op(t, n),
        );
    }

    for kind in [Kind::Tokio, Kind::Smol] {
        let bare = common::BarePool::new(8);
        rts.run(kind, common::uncontended(bare.clone(), n / 10));
        let t = rts.run(kind, common::uncontended(bare, n));
        f.record(format!("uncontended/{}", bare_label(kind)), ns_per_op(t, n));
    }

    let n = s.iters(1_000_000);
    let t = rts.run(
        Kind::Tokio,
        common::shared_uncontended::<wtpool_tokio::Tokio>(n),
    );
    f.record("uncontended-shared/wtpool/tokio", ns_per_op(t, n));
    let t = rts.run(
        Kind::Smol,
        common::shared_uncontended::<wtpool_smol::Smol>(n),
    );
    f.record("uncontended-shared/wtpool/smol", ns_per_op(t, n));

    let n = s.iters(1_000_000);
    common::floor_two_threads(n / 10);
    f.record("floor-threads", ns_per_op(common::floor_two_threads(n), n));
    for (peer, kind) in POOLS {
        let pool = AnyPool::make(rts, peer, kind, 8);
        pool.two_threads(rts, n / 10);
        let t = pool.two_threads(rts, n);
        f.record(format!("threads/{}", label(peer, kind)), ns_per_op(t, n));
    }
    let bare = common::BarePool::new(8);
    common::two_threads(rts.tokio.handle(), bare.clone(), n / 10);
    let t = common::two_threads(rts.tokio.handle(), bare, n);
    f.record("threads/bare", ns_per_op(t, n));

    let n = s.iters(500_000);
    for (size, tasks) in CONTENDED {
        for (peer, kind) in POOLS {
            let pool = AnyPool::make(rts, peer, kind, size);
            pool.contended(rts, kind, tasks, n / 10);
            let t = pool.contended(rts, kind, tasks, n);
            f.record(
                format!("contended/{size}/{tasks}/{}", label(peer, kind)),
                ns_per_op(t, n),
            );
        }
    }

    for (size, tasks) in CONTENDED {
        for kind in [Kind::Tokio, Kind::Smol] {
            let exec = rts.exec(kind);
            let bare = common::BarePool::new(size);
            let warm = common::contended(exec.clone(), bare.clone(), tasks, n / 10);
            rts.run(kind, warm);
            let t = rts.run(kind, common::contended(exec.clone(), bare, tasks, n));
            f.record(
                format!("contended/{size}/{tasks}/{}", bare_label(kind)),
                ns_per_op(t, n),
            );
            let t = rts.run(kind, common::yield_only(exec, tasks, n));
            f.record(
                format!("yield-only/{tasks}/{}", format!("{kind:?}").to_lowercase()),
                ns_per_op(t, n),
            );
        }
    }

    let n = s.iters(2_000_000);
    f.record(
        "parts/machine",
        ns_per_op(common::machine_uncontended(1, n), n),
    );
    f.record(
        "parts/machine-locked-clocked",
        ns_per_op(common::machine_locked_clocked(n), n),
    );
    f.record(
        "parts/by-hand",
        ns_per_op(common::wtpool_polled_by_hand(rts, n), n),
    );
    f.record("parts/clock", ns_per_op(common::clock_read(n), n));
    f.record("parts/mutex", ns_per_op(common::mutex_pair(n), n));
    f.record("parts/arc", ns_per_op(common::arc_pair(n), n));
}

const SIZES: [usize; 3] = [1, 64, 4096];
const WAITERS: [usize; 3] = [10, 1000, 10_000];

fn scaling_round(rts: &Runtimes, s: &Settings, f: &mut Figures) {
    let n = s.iters(2_000_000);
    for size in SIZES {
        f.record(
            format!("size/machine/{size}"),
            ns_per_op(common::machine_uncontended(size, n), n),
        );
    }
    let n = s.iters(500_000);
    for size in SIZES {
        f.record(
            format!("size/async/{size}"),
            ns_per_op(common::async_uncontended_size(rts, size, n), n),
        );
    }
    let n = s.iters(2_000_000);
    for waiters in WAITERS {
        f.record(
            format!("waiters/machine/{waiters}"),
            ns_per_op(common::machine_handoff(waiters, n), n),
        );
    }
    let n = s.iters(300_000);
    for waiters in WAITERS {
        f.record(
            format!("waiters/async/{waiters}"),
            ns_per_op(common::async_handoff(rts, waiters, n), n),
        );
        f.record(
            format!("waiters/deadpool/{waiters}"),
            ns_per_op(common::deadpool_handoff(rts, waiters, n), n),
        );
        f.record(
            format!("waiters/bare/{waiters}"),
            ns_per_op(common::bare_handoff(rts, waiters, n), n),
        );
    }
    let n = s.iters(1_000_000);
    for (name, position) in [("middle", Position::Middle), ("end", Position::End)] {
        f.record(
            format!("cancel/machine/{name}"),
            ns_per_op(common::machine_cancel(10_000, position, n), n),
        );
    }
    let n = s.iters(200_000);
    for (name, position) in [("middle", Position::Middle), ("end", Position::End)] {
        f.record(
            format!("cancel/async/{name}"),
            ns_per_op(common::async_cancel(rts, 10_000, position, n), n),
        );
    }
}

const BURST: usize = 200;

fn record_sample(f: &mut Figures, key: &str, sample: &Sample) {
    f.record(format!("{key}/rps"), sample.per_second());
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        f.record(
            format!("{key}/{name}"),
            sample.percentile(p).as_secs_f64() * 1e6,
        );
    }
    f.record(format!("{key}/errors"), sample.errors as f64);
    if let Some(connections) = sample.connections {
        f.record(format!("{key}/connections"), connections as f64);
    }
    if let Some(error) = &sample.first_error {
        eprintln!("  {key}: {} errors, the first: {error}", sample.errors);
    }
}

fn webtransport_round(rts: &Runtimes, target: &Target, s: &Settings, f: &mut Figures) {
    let settle = || std::thread::sleep(Duration::from_millis(200));
    let connections = s.requests(1_500);
    let requests = s.requests(20_000);
    type Workload = fn(Target, usize) -> std::pin::Pin<Box<dyn Future<Output = Sample> + Send>>;
    let workloads: [(&str, usize, Workload); 5] = [
        ("wt/new-connection", connections, |t, n| {
            Box::pin(wt::new_connection_per_request(t, n))
        }),
        ("wt/open-sessions", requests, |t, n| {
            Box::pin(wt::open_sessions_no_pool(t, n))
        }),
        ("wt/session-pool", requests, |t, n| {
            Box::pin(wt::session_pool(t, n))
        }),
        ("wt/open-streams", requests, |t, n| {
            Box::pin(wt::open_streams_no_pool(t, n))
        }),
        ("wt/stream-pool", requests, |t, n| {
            Box::pin(wt::stream_pool(t, n))
        }),
    ];
    // A workload that has not finished in this time (a handshake the server
    // never answered, say) is recorded as failed whole, so that the table
    // always ends.
    let bounded = |n: usize, workload: std::pin::Pin<Box<dyn Future<Output = Sample> + Send>>| {
        rts.run(Kind::Tokio, async move {
            tokio::time::timeout(WORKLOAD_TIMEOUT, workload)
                .await
                .unwrap_or_else(|_| Sample {
                    errors: n,
                    first_error: Some(format!("not finished within {WORKLOAD_TIMEOUT:?}")),
                    elapsed: WORKLOAD_TIMEOUT,
                    ..Sample::default()
                })
        })
    };
    for (key, n, workload) in workloads {
        eprintln!("  {key}");
        let sample = bounded(n, workload(target.clone(), n));
        record_sample(f, key, &sample);
        // The server closes what the workload opened before the next one starts.
        if key == "wt/new-connection" {
            std::thread::sleep(Duration::from_secs(1));
        }
        settle();
    }
    let shared: [(&str, Workload); 3] = [
        ("wt/shared-floor", |t, n| Box::pin(wt::shared_floor(t, n))),
        ("wt/shared-exclusive", |t, n| {
            Box::pin(wt::exclusive_sessions(t, n))
        }),
        ("wt/shared-pool", |t, n| Box::pin(wt::shared_sessions(t, n))),
    ];
    for (key, workload) in shared {
        eprintln!("  {key}");
        let sample = bounded(requests, workload(target.clone(), requests));
        record_sample(f, key, &sample);
        settle();
    }
    eprintln!("  wt/fleet");
    let sample = bounded(requests, Box::pin(wt::fleet(requests)));
    record_sample(f, "wt/fleet", &sample);
    if let Some(peak) = sample.peak_open {
        f.record("wt/fleet/peak-open", peak as f64);
    }
    settle();
    for (key, shared) in [("wt/cold-exclusive", false), ("wt/cold-shared", true)] {
        eprintln!("  {key}");
        let sample = bounded(
            wt::SHARED_TASKS,
            Box::pin(wt::cold_start(target.clone(), shared)),
        );
        record_sample(f, key, &sample);
        std::thread::sleep(Duration::from_millis(500));
    }
    for (key, capped) in [("wt/burst-uncapped", false), ("wt/burst-capped", true)] {
        eprintln!("  {key}");
        let sample = bounded(
            BURST,
            Box::pin(wt::cold_burst(target.clone(), BURST, capped)),
        );
        record_sample(f, key, &sample);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The longest one WebTransport workload may take.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(60);

// ----- memory -----

/// The async pool's creation failure, mirrored (it is private to wtpool):
/// the `E` its machine is instantiated with.
#[allow(dead_code)]
enum CreateFailure<E> {
    Error(E),
    TimedOut,
    Aborted,
}

/// The machine as the async pool instantiates it: its waiter payload is an
/// `Arc` of the waiter's slot (private too; any `Arc` has its size).
type DriverState<T, E> = PoolState<T, CreateFailure<E>, std::sync::Arc<()>>;

fn memory_rows() -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (name, (idle, waiter)) in [
        (
            "u64 (the engine rows' object)",
            DriverState::<u64, std::io::Error>::bytes_per_entry(),
        ),
        (
            "wtransport::Connection (SessionPool)",
            DriverState::<wtpool_tokio::wtransport::Connection, wtpool_tokio::WebTransportError>::bytes_per_entry(),
        ),
        (
            "wtpool_webtransport::Stream (StreamPool)",
            DriverState::<wtpool_tokio::Stream, wtpool_tokio::WebTransportError>::bytes_per_entry(),
        ),
    ] {
        rows.push((
            format!("idle object, {name}"),
            format!("{idle} B"),
        ));
        rows.push((
            format!("waiter, object {name}"),
            format!("{waiter} B"),
        ));
    }

    // Measured on the heap, at 10,000 entries (the containers grow by
    // doubling, so they hold up to twice what the entries need).
    const N: usize = 10_000;
    let now = Instant::now();
    let limits = Limits {
        min_idle: N,
        ..Limits::new(N)
    };
    // `new` asks for N creations (the action queue grows to N); the
    // difference after they are reported is the idle list alone.
    let (mut machine, _) =
        heap_of(|| DriverState::<u64, std::io::Error>::new(limits).expect("valid limits"));
    let mut tickets: Vec<_> = std::iter::from_fn(|| machine.poll_action())
        .filter_map(|action| match action {
            wtpool::machine::Action::Create(ticket) => Some(ticket),
            _ => None,
        })
        .collect();
    // (The tickets' own Vec is freed after the count, not during it.)
    let ((), idle_heap) = heap_of(|| {
        for ticket in tickets.drain(..) {
            machine
                .handle_created(ticket, common::OBJECT, now)
                .expect("our ticket");
        }
    });
    drop(tickets);
    assert_eq!(machine.status().idle, N);
    rows.push((
        format!("idle object, u64: heap held at {N} idle"),
        format!("{:.1} B", idle_heap as f64 / N as f64),
    ));

    let mut machine: DriverState<u64, std::io::Error> = common::machine_with_idle(1, 1, now);
    let held = common::ready(machine.acquire(now, |_| true, Default::default));
    let (waiters, waiter_heap) = heap_of(|| {
        (0..N)
            .map(|_| common::queued(machine.acquire(now, |_| true, Default::default)))
            .collect::<Vec<_>>()
    });
    // The harness's own Vec of tokens is not the machine's.
    let tokens = (waiters.capacity() * std::mem::size_of_val(&waiters[0])) as isize;
    rows.push((
        format!("waiter, object u64: heap held at {N} waiters"),
        format!("{:.1} B", (waiter_heap - tokens) as f64 / N as f64),
    ));
    drop((held, waiters));

    // Sizes only: a runtime that never runs, for the pool to be built on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let tokio = wtpool_tokio::Tokio::with_handle(runtime.handle().clone());
    let rts_free = wtpool::Builder::new(common::Trivial, tokio)
        .max_size(1)
        .build()
        .expect("a pool");
    // End to end: what N queued acquires hold in the pool (the machine's
    // entries and each waiter's slot), their own futures left out.
    let held = runtime
        .block_on(rts_free.acquire())
        .expect("the one object");
    let mut acquires: Vec<_> = (0..N).map(|_| Box::pin(rts_free.acquire())).collect();
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let ((), queued_heap) = heap_of(|| {
        for acquire in &mut acquires {
            assert!(acquire.as_mut().poll(&mut cx).is_pending());
        }
    });
    rows.push((
        format!("queued acquire of the async pool (its machine entry and its slot): heap held at {N} waiters"),
        format!("{:.1} B", queued_heap as f64 / N as f64),
    ));
    drop((acquires, held));
    rows.push((
        "an acquire() future (in the caller's task, not the pool)".into(),
        format!("{} B", std::mem::size_of_val(&rts_free.acquire())),
    ));
    rows.push((
        "a Pooled guard of a u64".into(),
        format!(
            "{} B",
            std::mem::size_of::<wtpool_tokio::Pooled<common::Trivial>>()
        ),
    ));
    rows
}

// ----- printing -----

fn print_engine(f: &Figures) {
    println!("## Engine: get + drop of a trivial object, ns per operation");
    println!();
    println!(
        "median (min–max) of the rounds; ratios of medians, above 1 means wtpool is faster. \
         The floors: a bare `Mutex<Vec>` (no async, no guard); the contended rows' executor alone \
         (the same tasks yielding, with no pool); and in each row a bare FIFO pool, the least a fair \
         async pool does: tokio's `Semaphore` (FIFO, the permit assigned into the waiter) and a \
         `Mutex<Vec>`, with no guard, no health check, no accounting (benches/common, `BarePool`)."
    );
    println!();
    let header: Vec<String> = POOLS.iter().map(|&(p, k)| label(p, k)).collect();
    println!(
        "| workload | Mutex<Vec> floor | {} | deadpool ÷ wtpool (tokio) | bb8 ÷ wtpool (tokio) | deadpool ÷ wtpool (smol) |",
        header.join(" | ")
    );
    println!("|---|---|{}---|---|---|", "---|".repeat(POOLS.len()));
    let row = |name: &str, prefix: &str, floor: String| {
        let cells: Vec<String> = POOLS
            .iter()
            .map(|&(p, k)| f.cell(&format!("{prefix}/{}", label(p, k)), "ns"))
            .collect();
        let m = |p, k| f.median(&format!("{prefix}/{}", label(p, k)));
        println!(
            "| {name} | {floor} | {} | {} | {} | {} |",
            cells.join(" | "),
            ratio(m(Peer::Deadpool, Kind::Tokio), m(Peer::Wtpool, Kind::Tokio)),
            ratio(m(Peer::Bb8, Kind::Tokio), m(Peer::Wtpool, Kind::Tokio)),
            ratio(m(Peer::Deadpool, Kind::Smol), m(Peer::Wtpool, Kind::Smol)),
        );
    };
    let bare = |prefix: &str| {
        format!(
            "bare FIFO pool: {} (tokio), {} (smol)",
            f.cell(&format!("{prefix}/{}", bare_label(Kind::Tokio)), "ns"),
            f.cell(&format!("{prefix}/{}", bare_label(Kind::Smol)), "ns"),
        )
    };
    row(
        "1 task, no contention",
        "uncontended",
        format!("{}; {}", f.cell("floor", "ns"), bare("uncontended")),
    );
    row(
        "pool 8, 2 OS threads, block_on, nobody waits",
        "threads",
        format!(
            "{}; bare FIFO pool: {}",
            f.cell("floor-threads", "ns"),
            f.cell("threads/bare", "ns")
        ),
    );
    for (size, tasks) in CONTENDED {
        row(
            &format!("pool {size}, {tasks} tasks, yield while holding"),
            &format!("contended/{size}/{tasks}"),
            format!(
                "no pool, yield only: {} (tokio), {} (smol); {}",
                f.cell(&format!("yield-only/{tasks}/tokio"), "ns"),
                f.cell(&format!("yield-only/{tasks}/smol"), "ns"),
                bare(&format!("contended/{size}/{tasks}")),
            ),
        );
    }
    println!();

    println!("What one uncontended get + drop is made of (ns):");
    println!();
    println!("| part | ns |");
    println!("|---|---|");
    for (name, key) in [
        ("`Instant::now()`", "parts/clock"),
        ("uncontended `Mutex` lock + unlock", "parts/mutex"),
        ("`Arc` clone + drop", "parts/arc"),
        (
            "machine alone: `acquire` + `release`, no clock, no lock",
            "parts/machine",
        ),
        (
            "machine behind a `Mutex`, 2 clock reads (the driver's sync work)",
            "parts/machine-locked-clocked",
        ),
        (
            "wtpool `acquire()` polled by hand + guard drop, no executor",
            "parts/by-hand",
        ),
        (
            "wtpool/tokio, one task (as above)",
            "uncontended/wtpool/tokio",
        ),
    ] {
        println!("| {name} | {} |", f.cell(key, "ns"));
    }
    println!();
}

fn print_scaling(f: &Figures) -> Vec<(String, bool, String)> {
    let mut goals = Vec::new();
    println!("## Scaling: ns per operation");
    println!();
    println!(
        "| case | machine (sans-IO) | wtpool/tokio (async) | deadpool/tokio (the same hand-off, for comparison) | bare FIFO pool/tokio (the same) |"
    );
    println!("|---|---|---|---|---|");
    let spread = |keys: &[String]| {
        let medians: Vec<f64> = keys.iter().map(|k| f.median(k)).collect();
        let best = medians.iter().copied().fold(f64::INFINITY, f64::min);
        let worst = medians.iter().copied().fold(0.0, f64::max);
        worst / best
    };
    let block = |what: &str, unit: &str, prefix: &str, cases: &[usize], goal: &mut Vec<_>| {
        for case in cases {
            println!(
                "| {what}: {case} {unit} | {} | {} | {} | {} |",
                f.cell(&format!("{prefix}/machine/{case}"), "ns"),
                f.cell(&format!("{prefix}/async/{case}"), "ns"),
                f.cell(&format!("{prefix}/deadpool/{case}"), "ns"),
                f.cell(&format!("{prefix}/bare/{case}"), "ns"),
            );
        }
        let keys = |layer: &str| -> Vec<String> {
            cases
                .iter()
                .map(|c| format!("{prefix}/{layer}/{c}"))
                .collect()
        };
        let (m, a) = (spread(&keys("machine")), spread(&keys("async")));
        let compared = |layer: &str| {
            let keys = keys(layer);
            if f.stat(&keys[0]).is_some() {
                format!("{:.2}x", spread(&keys))
            } else {
                "–".into()
            }
        };
        let (d, b) = (compared("deadpool"), compared("bare"));
        println!("| {what}: worst ÷ best | {m:.2}x | {a:.2}x | {d} | {b} |");
        goal.push((
            format!("{what}: worst ÷ best ≤ 1.3, machine"),
            m <= 1.3,
            format!("{m:.2}x"),
        ));
        goal.push((
            format!("{what}: worst ÷ best ≤ 1.3, async"),
            a <= 1.3,
            format!("{a:.2}x"),
        ));
    };
    block(
        "get + drop, idle objects",
        "(pool size)",
        "size",
        &SIZES,
        &mut goals,
    );
    block(
        "hand-off through the queue",
        "waiters queued",
        "waiters",
        &WAITERS,
        &mut goals,
    );
    for name in ["middle", "end"] {
        println!(
            "| cancel a waiter from the {name} of 10,000 (+ queue a newcomer) | {} | {} | – | – |",
            f.cell(&format!("cancel/machine/{name}"), "ns"),
            f.cell(&format!("cancel/async/{name}"), "ns"),
        );
    }
    let m = f.median("cancel/machine/middle") / f.median("cancel/machine/end");
    let a = f.median("cancel/async/middle") / f.median("cancel/async/end");
    println!("| cancel: middle ÷ end | {m:.2}x | {a:.2}x | – | – |");
    goals.push((
        "cancel from the middle ≈ from the end (≤ 1.3x), machine".into(),
        m <= 1.3,
        format!("{m:.2}x"),
    ));
    goals.push((
        "cancel from the middle ≈ from the end (≤ 1.3x), async".into(),
        a <= 1.3,
        format!("{a:.2}x"),
    ));
    println!();
    goals
}

fn print_memory(rows: &[(String, String)]) {
    println!("## Memory held by the state machine");
    println!();
    println!("| entry | bytes |");
    println!("|---|---|");
    for (name, bytes) in rows {
        println!("| {name} | {bytes} |");
    }
    println!();
}

fn print_webtransport(f: &Figures) {
    println!(
        "## WebTransport on loopback: {}-byte echo, {} clients at a time",
        wt::MESSAGE,
        wt::CLIENTS
    );
    println!();
    println!("| workload | req/s | p50 | p99 | max | errors | req/s vs its floor |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, key: &str, floor: Option<&str>| {
        let vs = floor.map_or("".into(), |fl| {
            format!(
                "{:.0}%",
                100.0 * f.median(&format!("{key}/rps")) / f.median(&format!("{fl}/rps"))
            )
        });
        println!(
            "| {name} | {} | {} | {} | {} | {} | {vs} |",
            f.cell(&format!("{key}/rps"), "/s"),
            f.cell(&format!("{key}/p50"), "us"),
            f.cell(&format!("{key}/p99"), "us"),
            f.cell(&format!("{key}/max"), "us"),
            f.median(&format!("{key}/errors")),
        );
    };
    row("a new connection per request", "wt/new-connection", None);
    row(
        &format!(
            "no pool: {} open sessions, a new stream per request (floor)",
            wt::CLIENTS
        ),
        "wt/open-sessions",
        None,
    );
    row(
        &format!("SessionPool({}), a new stream per request", wt::CLIENTS),
        "wt/session-pool",
        Some("wt/open-sessions"),
    );
    row(
        &format!(
            "no pool: {} open streams on one session (floor)",
            wt::CLIENTS
        ),
        "wt/open-streams",
        None,
    );
    row(
        &format!("StreamPool({}) on one session", wt::CLIENTS),
        "wt/stream-pool",
        Some("wt/open-streams"),
    );
    println!();
    println!(
        "Cold burst: {BURST} acquires at once on a fresh SessionPool({BURST}); latency from the start of the burst"
    );
    println!();
    println!("| creations in flight | p50 | p99 | max | errors |");
    println!("|---|---|---|---|---|");
    for (name, key) in [
        (
            "uncapped (every handshake at once)".to_string(),
            "wt/burst-uncapped",
        ),
        (
            format!(
                "capped at {} (the WebTransport pools' default)",
                wt::DEFAULT_CAP
            ),
            "wt/burst-capped",
        ),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            f.cell(&format!("{key}/p50"), "us"),
            f.cell(&format!("{key}/p99"), "us"),
            f.cell(&format!("{key}/max"), "us"),
            f.median(&format!("{key}/errors")),
        );
    }
    println!();
}

fn print_shared_engine(f: &Figures) -> Vec<(String, bool, String)> {
    println!("Shared leases: one task, acquire + drop, nobody waits (ns)");
    println!();
    println!("| runtime | exclusive pool | shared pool (16 leases) | shared / exclusive |");
    println!("|---|---|---|---|");
    let mut goals = Vec::new();
    for kind in [Kind::Tokio, Kind::Smol] {
        let exclusive = format!("uncontended/{}", label(Peer::Wtpool, kind));
        let shared = format!("uncontended-shared/{}", label(Peer::Wtpool, kind));
        let r = f.median(&shared) / f.median(&exclusive);
        println!(
            "| {} | {} | {} | {r:.2}x |",
            format!("{kind:?}").to_lowercase(),
            f.cell(&exclusive, "ns"),
            f.cell(&shared, "ns"),
        );
        goals.push((
            format!(
                "shared acquire + release ≤ 1.2x exclusive, {}",
                label(Peer::Wtpool, kind)
            ),
            r <= 1.2,
            format!("{r:.2}x"),
        ));
    }
    println!();
    goals
}

fn print_shared_sessions(f: &Figures) -> Vec<(String, bool, String)> {
    println!(
        "Shared sessions: {} tasks, a new stream per request; cold start = {} tasks released on an empty pool, until the last first reply",
        wt::SHARED_TASKS,
        wt::SHARED_TASKS
    );
    println!();
    println!("| workload | req/s | p50 | p99 | errors | QUIC connections | cold start (max) |");
    println!("|---|---|---|---|---|---|---|");
    for (name, key, cold) in [
        (
            format!(
                "no pool: {} sessions round robin (floor)",
                wt::SHARED_SESSIONS
            ),
            "wt/shared-floor",
            None,
        ),
        (
            format!("exclusive SessionPool({})", wt::SHARED_TASKS),
            "wt/shared-exclusive",
            Some("wt/cold-exclusive"),
        ),
        (
            format!(
                "SharedSessionPool({} x {})",
                wt::SHARED_SESSIONS,
                wt::SHARED_LEASES
            ),
            "wt/shared-pool",
            Some("wt/cold-shared"),
        ),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            f.cell(&format!("{key}/rps"), "/s"),
            f.cell(&format!("{key}/p50"), "us"),
            f.cell(&format!("{key}/p99"), "us"),
            f.median(&format!("{key}/errors")),
            f.median(&format!("{key}/connections")),
            cold.map_or("".into(), |c| f.cell(&format!("{c}/max"), "us")),
        );
    }
    println!();
    println!(
        "Fleet: {} servers x {} tasks, a new stream per request, under a cap of {} sessions (4 per server, 4 borrowers each)",
        wt::FLEET_SERVERS,
        wt::FLEET_TASKS_PER_SERVER,
        wt::FLEET_CAP
    );
    println!();
    println!("| req/s | p50 | p99 | errors | sessions made | most open at once (sampled) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} |",
        f.cell("wt/fleet/rps", "/s"),
        f.cell("wt/fleet/p50", "us"),
        f.cell("wt/fleet/p99", "us"),
        f.median("wt/fleet/errors"),
        f.median("wt/fleet/connections"),
        f.median("wt/fleet/peak-open"),
    );
    println!();
    let rps = |key: &str| f.median(&format!("{key}/rps"));
    let vs_floor = rps("wt/shared-pool") / rps("wt/shared-floor");
    let vs_exclusive = rps("wt/shared-pool") / rps("wt/shared-exclusive");
    let fewer =
        f.median("wt/shared-exclusive/connections") / f.median("wt/shared-pool/connections");
    let colder = f.median("wt/cold-exclusive/max") / f.median("wt/cold-shared/max");
    vec![
        (
            "shared sessions ≥ 0.9x the floor's req/s".into(),
            vs_floor >= 0.9,
            format!("{vs_floor:.2}x"),
        ),
        (
            "shared sessions ≥ 0.9x the exclusive pool's req/s".into(),
            vs_exclusive >= 0.9,
            format!("{vs_exclusive:.2}x"),
        ),
        (
            "shared sessions: 16x fewer QUIC connections".into(),
            fewer >= 16.0,
            format!("{fewer:.0}x"),
        ),
        (
            "shared cold start ≥ 5x faster than exclusive".into(),
            colder >= 5.0,
            format!("{colder:.1}x"),
        ),
        (
            format!(
                "fleet: no request fails, at most {} sessions open, every server served",
                wt::FLEET_CAP
            ),
            f.median("wt/fleet/errors") == 0.0
                && f.median("wt/fleet/peak-open") <= wt::FLEET_CAP as f64,
            format!(
                "{} errors, at most {} open",
                f.median("wt/fleet/errors"),
                f.median("wt/fleet/peak-open")
            ),
        ),
    ]
}

fn engine_goals(f: &Figures) -> Vec<(String, bool, String)> {
    let mut goals = Vec::new();
    for kind in [Kind::Tokio, Kind::Smol] {
        let floor = f.median("floor");
        let r = f.median(&format!("uncontended/{}", label(Peer::Wtpool, kind))) / floor;
        let b = f.median(&format!("uncontended/{}", bare_label(kind))) / floor;
        goals.push((
            format!("uncontended {} ≤ 3x the floor", label(Peer::Wtpool, kind)),
            r <= 3.0,
            format!("{r:.2}x (bare FIFO pool: {b:.2}x)"),
        ));
        let key = |p| format!("threads/{}", label(p, kind));
        let deadpool = f.median(&key(Peer::Deadpool));
        let r = deadpool / f.median(&key(Peer::Wtpool));
        let b = deadpool / f.median("threads/bare");
        goals.push((
            format!(
                "2 OS threads: {} ≥ 2x deadpool's throughput",
                label(Peer::Wtpool, kind)
            ),
            r >= 2.0,
            format!("{r:.2}x (bare FIFO pool: {b:.2}x)"),
        ));
    }
    for (size, tasks) in CONTENDED {
        for (peer, kind) in [
            (Peer::Deadpool, Kind::Tokio),
            (Peer::Bb8, Kind::Tokio),
            (Peer::Deadpool, Kind::Smol),
        ] {
            let key = |p| format!("contended/{size}/{tasks}/{}", label(p, kind));
            let r = f.median(&key(peer)) / f.median(&key(Peer::Wtpool));
            let bare = format!("contended/{size}/{tasks}/{}", bare_label(kind));
            let b = f.median(&key(peer)) / f.median(&bare);
            goals.push((
                format!(
                    "pool {size}, {tasks} tasks: wtpool/{} ≥ 2x {}'s throughput",
                    format!("{kind:?}").to_lowercase(),
                    peer.name()
                ),
                r >= 2.0,
                format!("{r:.2}x (bare FIFO pool: {b:.2}x)"),
            ));
        }
    }
    goals
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {model}")
}

// ----- callgrind -----

fn callgrind(case: &str, iters: u64) {
    let rts = Runtimes::new();
    let pool_case = |peer, kind| {
        let pool = AnyPool::make(&rts, peer, kind, 8);
        pool.uncontended(&rts, kind, iters);
    };
    let contended_case = |peer, kind| {
        let pool = AnyPool::make(&rts, peer, kind, 8);
        pool.contended(&rts, kind, 64, iters);
    };
    // The contended workload on a one-thread tokio runtime: the same
    // interleaving every run, so that instruction counts repeat.
    // `None`: the bare FIFO pool (`common::BarePool`).
    let one_thread = |peer: Option<Peer>| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let exec = common::Exec::Tokio(rt.handle().clone());
        rt.block_on(async move {
            match peer {
                Some(Peer::Wtpool) => {
                    let pool = common::make_wtpool_tokio(8).await;
                    common::contended(exec, pool, 64, iters).await
                }
                Some(Peer::Deadpool) => {
                    let pool = common::make_deadpool(8).await;
                    common::contended(exec, pool, 64, iters).await
                }
                Some(Peer::Bb8) => {
                    let pool = common::make_bb8(8).await;
                    common::contended(exec, pool, 64, iters).await
                }
                None => common::contended(exec, common::BarePool::new(8), 64, iters).await,
            }
        });
    };
    match case {
        "floor" => drop(common::floor(iters)),
        "machine" => drop(common::machine_uncontended(1, iters)),
        "machine-locked-clocked" => drop(common::machine_locked_clocked(iters)),
        "by-hand" => drop(common::wtpool_polled_by_hand(&rts, iters)),
        "wtpool-tokio" => pool_case(Peer::Wtpool, Kind::Tokio),
        "wtpool-smol" => pool_case(Peer::Wtpool, Kind::Smol),
        "wtpool-shared-tokio" => drop(rts.run(
            Kind::Tokio,
            common::shared_uncontended::<wtpool_tokio::Tokio>(iters),
        )),
        "deadpool-tokio" => pool_case(Peer::Deadpool, Kind::Tokio),
        "deadpool-smol" => pool_case(Peer::Deadpool, Kind::Smol),
        "bb8-tokio" => pool_case(Peer::Bb8, Kind::Tokio),
        "wtpool-tokio-contended" => contended_case(Peer::Wtpool, Kind::Tokio),
        "wtpool-smol-contended" => contended_case(Peer::Wtpool, Kind::Smol),
        "deadpool-tokio-contended" => contended_case(Peer::Deadpool, Kind::Tokio),
        "deadpool-smol-contended" => contended_case(Peer::Deadpool, Kind::Smol),
        "bb8-tokio-contended" => contended_case(Peer::Bb8, Kind::Tokio),
        "wtpool-contended-1thread" => one_thread(Some(Peer::Wtpool)),
        "deadpool-contended-1thread" => one_thread(Some(Peer::Deadpool)),
        "bb8-contended-1thread" => one_thread(Some(Peer::Bb8)),
        "bare-contended-1thread" => one_thread(None),
        "bare-tokio" => drop(rts.run(
            Kind::Tokio,
            common::uncontended(common::BarePool::new(8), iters),
        )),
        other => {
            eprintln!(
                "unknown case {other:?}: floor, machine, machine-locked-clocked, by-hand, \
                 wtpool-tokio, wtpool-smol, wtpool-shared-tokio (16 leases), deadpool-tokio, \
                 deadpool-smol, bb8-tokio, \
                 the same five with -contended (pool 8, 64 tasks), and \
                 wtpool-contended-1thread, deadpool-contended-1thread, bb8-contended-1thread, \
                 and bare-tokio, bare-contended-1thread (the bare FIFO pool)"
            );
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut settings = Settings {
        rounds: 5,
        scale: 1.0,
        engine: true,
        scaling: true,
        webtransport: true,
    };
    // `cargo bench` passes `--bench`; without it the binary was started by
    // `cargo test --benches` (or `--all-targets`): a smoke run only.
    if !std::env::args().any(|arg| arg == "--bench" || arg == "--callgrind") {
        eprintln!("not run by `cargo bench`: a quick smoke run, without WebTransport");
        settings.scale = 0.1;
        settings.rounds = 1;
        settings.webtransport = false;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                settings.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--rounds N, N at least 1");
            }
            "--quick" => {
                settings.scale = 0.1;
                settings.rounds = 1;
            }
            "--no-webtransport" => settings.webtransport = false,
            "--only" => {
                let section = args.next().unwrap_or_default();
                settings.engine = section == "engine";
                settings.scaling = section == "scaling";
                settings.webtransport = section == "webtransport";
                assert!(
                    settings.engine || settings.scaling || settings.webtransport,
                    "--only engine|scaling|webtransport"
                );
            }
            "--callgrind" => {
                let case = args.next().expect("--callgrind CASE ITERS");
                let iters = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--callgrind CASE ITERS");
                callgrind(&case, iters);
                return;
            }
            // `cargo bench` passes `--bench`; criterion-style filters are ignored.
            _ => {}
        }
    }

    let started = Instant::now();
    let machine = machine_description();
    eprintln!(
        "wtpool performance table: {} round(s) on {machine}; progress on stderr, the table on stdout",
        settings.rounds
    );
    let memory = memory_rows();
    let rts = Runtimes::new();
    let server = settings.webtransport.then(|| {
        let _entered = rts.tokio.enter();
        EchoServer::start(EchoServerOptions::default()).expect("the echo server starts")
    });
    let target = server.as_ref().map(|server| {
        assert!(server.local_addr().ip().is_loopback());
        Target {
            url: server.url(),
            hash: server.certificate_hash(),
        }
    });
    let mut figures = Figures::default();
    for round in 1..=settings.rounds {
        if settings.engine {
            eprintln!("round {round}/{}: engine", settings.rounds);
            engine_round(&rts, &settings, &mut figures);
        }
        if settings.scaling {
            eprintln!("round {round}/{}: scaling", settings.rounds);
            scaling_round(&rts, &settings, &mut figures);
        }
        if let Some(target) = &target {
            eprintln!("round {round}/{}: webtransport", settings.rounds);
            webtransport_round(&rts, target, &settings, &mut figures);
        }
    }

    println!("# wtpool performance");
    println!();
    println!(
        "{machine}; {} round(s), {}; {:.0} s in all",
        settings.rounds,
        if settings.scale < 1.0 {
            "quick"
        } else {
            "full work"
        },
        started.elapsed().as_secs_f64()
    );
    println!();
    let mut goals = Vec::new();
    if settings.engine {
        print_engine(&figures);
        goals.extend(engine_goals(&figures));
    }
    if settings.scaling {
        goals.extend(print_scaling(&figures));
    }
    print_memory(&memory);
    if settings.engine {
        goals.extend(print_shared_engine(&figures));
    }
    if target.is_some() {
        print_webtransport(&figures);
        goals.extend(print_shared_sessions(&figures));
    }
    println!("## Goals");
    println!();
    println!("| goal | measured | |");
    println!("|---|---|---|");
    for (goal, met, measured) in goals {
        println!("| {goal} | {measured} | {} |", verdict(met));
    }
    drop(server);
}
