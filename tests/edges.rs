//! The pool at the edges of its runtime and its factory (issue 8): a runtime
//! that shuts down under thousands of waiters, calls from outside any
//! runtime, the runtime that work is spawned on, a runtime that cannot run
//! tasks, paused time, given-up handshakes, and a factory that panics in
//! each of its methods.
//!
//! Where the runtime matters, a scenario runs on both (the `scenarios!`
//! macro of tests/support/harness.rs); the tokio-only ones are plain tests
//! that make the runtimes they need. Every test here once failed: each names
//! the defect it caught.
//!
//! Timing: the tests wait for events (a status, a count), patient up to
//! `PATIENCE`, and never bound an elapsed time from above; the paused-time
//! tests run on tokio's virtual clock and take no real time to speak of.

#[macro_use]
#[path = "support/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::join_all;
use tokio::sync::Semaphore;
use wtpool::machine::{REFILL_BACKOFF_MAX, REFILL_BACKOFF_MIN};
use wtpool::{ConfigError, Factory, Pool, PoolError, Runtime, Status, TimeoutKind};
use wtpool_tokio::Tokio;
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
use wtpool_webtransport::{ClientOptions, SessionPool, client_endpoint};

use harness::{TestRuntime, lock, take_one};

/// How long a test waits for a state before failing.
const PATIENCE: Duration = Duration::from_secs(10);

// ----- the factory -----

/// The factory's error.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EdgeError(&'static str);

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for EdgeError {}

/// The pooled object: the factory's id for it, in order of creation.
#[derive(Debug)]
struct Obj(u64);

/// What the factory was told to do and what it did.
#[derive(Default)]
struct Shared {
    next_id: AtomicU64,
    /// The next so many calls of each method panic (or, for `fail_creates`, fail).
    panic_creates: AtomicUsize,
    fail_creates: AtomicUsize,
    panic_checks: AtomicUsize,
    panic_closes: AtomicUsize,
    dead: Mutex<HashSet<u64>>,
    /// Ids closed, in order (a close that panics is recorded first).
    closed: Mutex<Vec<u64>>,
    /// When each `create` was called, on tokio's clock (paused in the
    /// paused-time tests; the system's clock elsewhere).
    create_calls: Mutex<Vec<tokio::time::Instant>>,
    /// While `Some`, each creation waits here for a permit (or for the gate to close).
    gate: Mutex<Option<Arc<Semaphore>>>,
}

/// A factory that panics, fails or holds its creations on request.
#[derive(Clone, Default)]
struct Edgy(Arc<Shared>);

/// The message of every panic the factory is asked for; the panic hook
/// keeps them out of the test output.
const ASKED: &str = "the edge factory panics, as asked";

impl Edgy {
    fn new() -> Self {
        static QUIET: Once = Once::new();
        QUIET.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.payload().downcast_ref::<&str>() != Some(&ASKED) {
                    default(info);
                }
            }));
        });
        Edgy::default()
    }

    fn panic_creates(&self, n: usize) {
        self.0.panic_creates.store(n, Ordering::SeqCst);
    }

    fn fail_creates(&self, n: usize) {
        self.0.fail_creates.store(n, Ordering::SeqCst);
    }

    fn panic_checks(&self, n: usize) {
        self.0.panic_checks.store(n, Ordering::SeqCst);
    }

    fn panic_closes(&self, n: usize) {
        self.0.panic_closes.store(n, Ordering::SeqCst);
    }

    fn kill(&self, id: u64) {
        lock(&self.0.dead).insert(id);
    }

    fn closed(&self) -> Vec<u64> {
        lock(&self.0.closed).clone()
    }

    fn create_calls(&self) -> Vec<tokio::time::Instant> {
        lock(&self.0.create_calls).clone()
    }

    /// From now on each creation waits until the gate opens.
    fn hold(&self) {
        *lock(&self.0.gate) = Some(Arc::new(Semaphore::new(0)));
    }

    /// Opens the gate: held creations go on, new ones no longer wait.
    fn open(&self) {
        if let Some(gate) = lock(&self.0.gate).take() {
            gate.close();
        }
    }
}

impl Factory for Edgy {
    type Object = Obj;
    type Error = EdgeError;

    async fn create(&self) -> Result<Obj, EdgeError> {
        let shared = &*self.0;
        lock(&shared.create_calls).push(tokio::time::Instant::now());
        let gate = lock(&shared.gate).clone();
        if let Some(gate) = gate {
            // A closed gate lets everyone through.
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
        if take_one(&shared.panic_creates) {
            panic!("{}", ASKED);
        }
        if take_one(&shared.fail_creates) {
            return Err(EdgeError("create failed"));
        }
        Ok(Obj(shared.next_id.fetch_add(1, Ordering::SeqCst)))
    }

    fn is_alive(&self, object: &mut Obj) -> bool {
        if take_one(&self.0.panic_checks) {
            panic!("{}", ASKED);
        }
        !lock(&self.0.dead).contains(&object.0)
    }

    async fn close(&self, object: Obj) -> Result<(), EdgeError> {
        lock(&self.0.closed).push(object.0);
        if take_one(&self.0.panic_closes) {
            panic!("{}", ASKED);
        }
        Ok(())
    }
}

type EdgePool<R> = Pool<Edgy, R>;

// ----- helpers -----

/// (size, idle, in_use, creating, waiting), checked for consistency.
fn occupancy<R: Runtime>(pool: &EdgePool<R>) -> (usize, usize, usize, usize, usize) {
    let s: Status = harness::checked(pool.status());
    (s.size, s.idle, s.in_use, s.creating, s.waiting)
}

/// Waits for `cond`, checking every millisecond, for at most `PATIENCE`.
async fn wait_until<R: TestRuntime>(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "waited in vain until {what}");
        R::default().sleep(Duration::from_millis(1)).await;
    }
}

/// The same as [`wait_until`], for a plain thread.
fn block_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "waited in vain until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The id of a fresh acquire from `pool`, which must succeed in time: the
/// slot that a panic touched was not lost.
async fn acquire_id<R: TestRuntime>(pool: &EdgePool<R>) -> u64 {
    match harness::within::<R, _>(PATIENCE, pool.acquire()).await {
        Some(Ok(guard)) => guard.0,
        Some(Err(error)) => panic!("the acquire failed: {error}"),
        None => panic!("the acquire hangs: a slot was lost; {:?}", pool.status()),
    }
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

// ----- a factory that panics: never a lost slot -----

/// A `create` that panics fails its waiter with `CreatePanicked` and frees
/// its slot (the panic is caught in the creation's task, on every executor).
async fn create_panic_frees_the_slot<R: TestRuntime>() {
    let f = Edgy::new();
    f.panic_creates(1);
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let outcome = pool.acquire().await.map(|g| g.0);
    assert!(
        matches!(outcome, Err(PoolError::CreatePanicked)),
        "{outcome:?}"
    );
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(pool.counters().create_failed, 1);
    assert_eq!(acquire_id(&pool).await, 0);
}

/// Regression: an `is_alive` that panics when a guard drops lost the slot
/// for good (`in_use` stayed 1). Now the object counts as dead and is closed.
async fn is_alive_panic_at_return_frees_the_slot<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let guard = pool.acquire().await.unwrap();
    f.panic_checks(1);
    drop(guard);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    wait_until::<R>("the object is closed", || f.closed() == [0]).await;
    assert_eq!(acquire_id(&pool).await, 1);
}

/// The same through `Pool::release`, which closes the object itself.
async fn is_alive_panic_at_release_frees_the_slot<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let guard = pool.acquire().await.unwrap();
    f.panic_checks(1);
    pool.release(guard).await.expect("closed as dead, no error");
    assert_eq!(f.closed(), [0]);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(acquire_id(&pool).await, 1);
}

/// An idle object whose check panics at checkout is closed, and a new one
/// is made in its slot.
async fn is_alive_panic_at_checkout_frees_the_slot<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    assert_eq!(acquire_id(&pool).await, 0);
    assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0));
    f.panic_checks(1);
    let guard = pool.acquire().await.unwrap();
    assert_eq!(guard.0, 1, "a new object, not the one whose check panicked");
    wait_until::<R>("the old object is closed", || f.closed() == [0]).await;
    assert_eq!(occupancy(&pool), (1, 0, 1, 0, 0));
}

/// An idle object whose check panics in the background idle check is closed
/// and its slot freed.
async fn is_alive_panic_in_the_idle_check_frees_the_slot<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::builder(f.clone())
        .max_size(1)
        .idle_check_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    assert_eq!(acquire_id(&pool).await, 0);
    f.panic_checks(1);
    wait_until::<R>("the idle check closes the object", || f.closed() == [0]).await;
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(acquire_id(&pool).await, 1);
}

/// Regression: a `close` that panicked in a spawned close took its task
/// down uncounted. Now it counts as a failed close.
async fn close_panic_in_a_spawned_close_is_counted<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let guard = pool.acquire().await.unwrap();
    f.kill(0);
    f.panic_closes(1);
    drop(guard);
    wait_until::<R>("the failed close is counted", || {
        pool.counters().close_failed == 1
    })
    .await;
    assert_eq!(f.closed(), [0]);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(acquire_id(&pool).await, 1);
}

/// A `close` that panics in `discard` is counted and resumed in the caller,
/// who awaits that close.
async fn close_panic_in_discard_is_counted_and_resumed<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let guard = pool.acquire().await.unwrap();
    f.panic_closes(1);
    let closed = AssertUnwindSafe(guard.discard()).catch_unwind().await;
    assert!(closed.is_err(), "the panic reaches the caller");
    assert_eq!(pool.counters().close_failed, 1);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(acquire_id(&pool).await, 1);
}

/// Regression: a `close` that panicked in `Pool::close` left the other idle
/// objects unclosed. Now all are closed, every failure counted, and the
/// panic resumed in the caller after that.
async fn close_panic_in_pool_close_closes_the_rest<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 2).unwrap();
    let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    drop((a, b));
    f.panic_closes(1);
    let closed = AssertUnwindSafe(pool.close()).catch_unwind().await;
    assert!(closed.is_err(), "the panic reaches the caller");
    let mut closed = f.closed();
    closed.sort_unstable();
    assert_eq!(closed, [0, 1], "both idle objects were closed");
    assert_eq!(pool.counters().close_failed, 1);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0));
}

/// A `close` that panics in `release` (the object died while out) is
/// counted and resumed in the caller, who awaits that close.
async fn close_panic_in_release_is_counted_and_resumed<R: TestRuntime>() {
    let f = Edgy::new();
    let pool = EdgePool::<R>::new(f.clone(), 1).unwrap();
    let guard = pool.acquire().await.unwrap();
    f.kill(guard.0);
    f.panic_closes(1);
    let released = AssertUnwindSafe(pool.release(guard)).catch_unwind().await;
    assert!(released.is_err(), "the panic reaches the caller");
    assert_eq!(f.closed(), [0]);
    assert_eq!(pool.counters().close_failed, 1);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0), "slot freed");
    assert_eq!(acquire_id(&pool).await, 1);
}

// ----- given-up handshakes (wtransport) -----

/// Regression: on smol, a handshake whose creation timed out went on in the
/// background tokio runtime (only its `JoinHandle` was dropped), so
/// `max_creating` did not bound the handshakes in flight. Now it is aborted
/// where it runs, on both runtimes.
///
/// The server takes no connection up, so every handshake hangs; the
/// client's idle timeout is a minute, so a handshake left running stays
/// open that long. Once every acquire has failed, the client endpoint must
/// drop to no open connection (an aborted one drains for about 3 s first:
/// three of quinn's initial probe timeouts).
async fn given_up_handshakes_are_aborted<R: TestRuntime>() {
    let server = EchoServer::start(EchoServerOptions::default()).expect("an echo server");
    server.set_accepting(false);
    let options = ClientOptions {
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        max_idle_timeout: Some(Duration::from_secs(60)),
        ..ClientOptions::default()
    }
    .with_certificate_hash(server.certificate_hash());
    let endpoint = client_endpoint::<R>(&options).expect("a client endpoint");
    let pool = SessionPool::<R>::builder(endpoint.clone(), server.url(), 4)
        .expect("a valid URL")
        .options(|o| o.max_creating(2).create_timeout(Duration::from_millis(200)))
        .build()
        .expect("a pool");
    let outcomes = join_all((0..4).map(|_| pool.acquire())).await;
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(PoolError::Timeout(TimeoutKind::Create))),
            "{:?}",
            outcome.map(|_| "a session")
        );
    }
    assert_eq!(pool.counters().create_failed, 4);
    let start = Instant::now();
    while endpoint.open_connections() > 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "{} handshakes given up are still in flight",
            endpoint.open_connections()
        );
        R::default().sleep(Duration::from_millis(10)).await;
    }
}

scenarios!(
    create_panic_frees_the_slot,
    is_alive_panic_at_return_frees_the_slot,
    is_alive_panic_at_release_frees_the_slot,
    is_alive_panic_at_checkout_frees_the_slot,
    is_alive_panic_in_the_idle_check_frees_the_slot,
    close_panic_in_a_spawned_close_is_counted,
    close_panic_in_discard_is_counted_and_resumed,
    close_panic_in_pool_close_closes_the_rest,
    close_panic_in_release_is_counted_and_resumed,
    given_up_handshakes_are_aborted,
);

// ----- a runtime that shuts down -----

/// Set in the child process that [`in_child_process`] starts: the name of
/// the test it is to run.
const CHILD: &str = "WTPOOL_EDGES_CHILD";

/// Runs `scenario` in a child process (this test binary, running test
/// `name` alone), so that a crash of the scenario (a stack overflow aborts
/// the process) fails this test rather than the whole suite.
fn in_child_process(name: &str, scenario: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        scenario();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .output()
        .expect("start the child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the scenario failed in its child process ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// Regression: a runtime that shuts down while its pool has thousands of
/// waiters overflowed the stack and aborted the process. The creation
/// dropped with the runtime failed one waiter and started a creation for
/// the next, spawned on the dying runtime, which dropped it inside `spawn`,
/// whose drop failed the next waiter, and so on: one stack frame per
/// waiter. Now each creation's end is queued and reported in a loop.
///
/// The pool runs on a runtime that is then dropped; its waiters wait on
/// another, healthy runtime: each fails with `CreateAborted` (the pool's
/// runtime is gone, nothing can be created), none hangs, and the pool's
/// accounting ends empty.
#[test]
fn dying_runtime_fails_thousands_of_waiters_without_overflow() {
    in_child_process(
        "dying_runtime_fails_thousands_of_waiters_without_overflow",
        dying_runtime_with_thousands_of_waiters,
    );
}

fn dying_runtime_with_thousands_of_waiters() {
    const WAITERS: usize = 20_000;
    let f = Edgy::new();
    f.hold();
    let dying = current_thread_runtime();
    let healthy = multi_thread_runtime();
    let pool = wtpool::Builder::new(f.clone(), Tokio::with_handle(dying.handle().clone()))
        .max_size(1)
        .build()
        .unwrap();
    // The first acquire, from a task of the dying runtime, starts the one
    // creation there; it waits at the gate.
    let first = {
        let pool = pool.clone();
        dying.spawn(async move { pool.acquire().await.map(|g| g.0) })
    };
    dying.block_on(async {
        while f.create_calls().is_empty() {
            tokio::task::yield_now().await;
        }
    });
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let pool = pool.clone();
            healthy.spawn(async move { pool.acquire().await.map(|g| g.0) })
        })
        .collect();
    block_until("every waiter is queued", || {
        occupancy(&pool) == (1, 0, 0, 1, WAITERS + 1)
    });

    drop(first);
    drop(dying);

    let outcomes = healthy.block_on(join_all(waiters));
    for outcome in outcomes {
        let outcome = outcome.expect("the waiter's task ended");
        assert!(
            matches!(outcome, Err(PoolError::CreateAborted)),
            "{outcome:?}"
        );
    }
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0));
}

/// Regression: creations were spawned on whichever runtime was current, so
/// a creation started by an acquire from a short-lived runtime died with it,
/// and every replacement was spawned on the dying runtime too: the waiters
/// on the pool's own, healthy runtime all failed with `CreateAborted`. Now
/// creations go to the pool's runtime, and the short-lived one takes none
/// of them down.
#[test]
fn creations_run_on_the_pools_runtime() {
    let f = Edgy::new();
    f.hold();
    let healthy = multi_thread_runtime();
    let pool = wtpool::Builder::new(f.clone(), Tokio::with_handle(healthy.handle().clone()))
        .max_size(1)
        .build()
        .unwrap();
    let passing = current_thread_runtime();
    let first = {
        let pool = pool.clone();
        passing.spawn(async move { pool.acquire().await.map(|g| g.0) })
    };
    passing.block_on(async {
        while occupancy(&pool) != (1, 0, 0, 1, 1) {
            tokio::task::yield_now().await;
        }
    });
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            healthy.spawn(async move { pool.acquire().await.map(|g| g.0) })
        })
        .collect();
    block_until("the waiters are queued", || {
        occupancy(&pool) == (1, 0, 0, 1, 4)
    });

    drop(first);
    drop(passing);
    assert_eq!(
        occupancy(&pool),
        (1, 0, 0, 1, 3),
        "the creation lives on, only its first waiter left"
    );

    f.open();
    let outcomes = healthy.block_on(join_all(waiters));
    for outcome in outcomes {
        assert_eq!(outcome.expect("the waiter's task ended").ok(), Some(0));
    }
    assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0));
}

// ----- outside any runtime -----

/// Regression: an acquire with a wait timeout panicked outside a runtime
/// ("there is no reactor running"): the timer was made on the caller's
/// runtime, not the pool's.
#[test]
fn acquire_with_a_wait_timeout_works_outside_any_runtime() {
    let runtime = multi_thread_runtime();
    let f = Edgy::new();
    let pool: EdgePool<Tokio> = runtime.block_on(async {
        Pool::builder(f.clone())
            .max_size(1)
            .wait_timeout(Duration::from_millis(50))
            .build()
            .unwrap()
    });
    // From this plain thread (`smol::block_on` is no tokio runtime):
    let held = smol::block_on(pool.acquire()).expect("created on the pool's runtime");
    let outcome = smol::block_on(pool.acquire()).map(|g| g.0);
    assert!(
        matches!(outcome, Err(PoolError::Timeout(TimeoutKind::Wait))),
        "{outcome:?}"
    );
    drop(held);
    let again = smol::block_on(pool.acquire()).map(|g| g.0);
    assert_eq!(again.ok(), Some(0));
    assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0));
}

/// `release` works from a plain thread too: a live object goes back to
/// idle, a dead one is closed in the caller's future, which the caller
/// awaits there.
#[test]
fn release_works_outside_any_runtime() {
    let runtime = multi_thread_runtime();
    let f = Edgy::new();
    let pool: EdgePool<Tokio> = runtime.block_on(async { Pool::new(f.clone(), 1).unwrap() });
    let guard = smol::block_on(pool.acquire()).expect("an object");
    smol::block_on(pool.release(guard)).expect("given back");
    assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0));
    let guard = smol::block_on(pool.acquire()).expect("the same object");
    f.kill(guard.0);
    smol::block_on(pool.release(guard)).expect("closed without error");
    assert_eq!(f.closed(), [0]);
    assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0));
}

/// A guard dropped by a thread-local's destructor, after tokio's own
/// thread-locals are gone (tokio's `Handle::enter` panics then, and a panic
/// in a thread-local's destructor aborts the process), is given back all
/// the same. In a child process, so that an abort fails this test only.
#[test]
fn a_guard_dropped_at_thread_exit_is_given_back() {
    in_child_process(
        "a_guard_dropped_at_thread_exit_is_given_back",
        guard_dropped_at_thread_exit,
    );
}

fn guard_dropped_at_thread_exit() {
    std::thread_local! {
        static KEPT: std::cell::RefCell<Option<wtpool::Pooled<Edgy, Tokio>>> =
            const { std::cell::RefCell::new(None) };
    }
    let runtime = multi_thread_runtime();
    let pool = wtpool::Builder::new(Edgy::new(), Tokio::with_handle(runtime.handle().clone()))
        .max_size(1)
        .build()
        .unwrap();
    let lender = pool.clone();
    std::thread::spawn(move || {
        // Touched first, so that its destructor runs after tokio's.
        KEPT.with(|kept| kept.borrow_mut().take());
        let guard = smol::block_on(lender.acquire()).expect("an object");
        KEPT.with(|kept| *kept.borrow_mut() = Some(guard));
    })
    .join()
    .expect("the thread ended");
    assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0), "given back");
}

/// Regression: a pool built outside any runtime (a `Tokio` with no handle)
/// was built, and dropped its upkeep task and every creation unrun. Now it
/// is refused, with an error that says why.
#[test]
fn a_pool_without_a_runtime_is_refused() {
    let nowhere = Tokio::current();
    assert!(!nowhere.can_run_tasks());
    let refused = EdgePool::<Tokio>::new(Edgy::new(), 1).map(drop);
    assert_eq!(refused, Err(ConfigError::NoRuntime));
    let refused = EdgePool::<Tokio>::builder(Edgy::new())
        .min_idle(1)
        .build()
        .map(drop);
    assert_eq!(refused, Err(ConfigError::NoRuntime));
    let message = ConfigError::NoRuntime.to_string();
    assert!(message.contains("cannot run tasks"), "{message}");

    // Given a handle, it is built from anywhere, and says where it runs.
    let runtime = current_thread_runtime();
    let pool = wtpool::Builder::new(Edgy::new(), Tokio::with_handle(runtime.handle().clone()))
        .build()
        .unwrap();
    assert!(pool.runtime().can_run_tasks());
    assert!(pool.runtime().handle().is_some());
}

// ----- one clock: paused time -----

/// Runs `scenario` on a tokio runtime whose time is paused: it moves only
/// when every task waits, straight to the next timer.
fn paused(scenario: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused tokio runtime")
        .block_on(scenario);
}

/// Waits in virtual time, a millisecond at a time, until `cond`, for at most
/// `limit` of virtual time.
async fn wait_virtual(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "waited {limit:?} of virtual time in vain until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The pool's clock is its runtime's, from any thread: a paused
/// current-thread runtime's virtual time, and a multi-thread runtime's
/// system time (read without entering it, since tokio never pauses it).
#[test]
fn the_tokio_clock_is_the_bound_runtimes_from_any_thread() {
    const HOUR: Duration = Duration::from_secs(3600);
    let paused_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let clock = Tokio::with_handle(paused_rt.handle().clone());
    let before = std::thread::scope(|s| s.spawn(|| clock.now()).join().unwrap());
    paused_rt.block_on(async { tokio::time::sleep(HOUR).await });
    let after = std::thread::scope(|s| s.spawn(|| clock.now()).join().unwrap());
    assert!(
        after - before >= HOUR,
        "virtual time moved {:?}",
        after - before
    );

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock = Tokio::with_handle(multi.handle().clone());
    let start = Instant::now();
    let read = std::thread::scope(|s| s.spawn(|| clock.now()).join().unwrap());
    assert!(
        start <= read && read <= Instant::now(),
        "not the system's clock"
    );
}

/// Regression: the driver read the system clock but slept on tokio's, so
/// under paused time an idle timeout never came. Now an hour of idle
/// timeout passes in no real time.
#[test]
fn paused_time_drives_the_idle_timeout() {
    paused(async {
        const HOUR: Duration = Duration::from_secs(3600);
        let f = Edgy::new();
        let pool: EdgePool<Tokio> = Pool::builder(f.clone())
            .max_size(1)
            .idle_timeout(HOUR)
            .build()
            .unwrap();
        drop(pool.acquire().await.unwrap());
        tokio::time::sleep(HOUR - Duration::from_secs(1)).await;
        assert_eq!(
            occupancy(&pool),
            (1, 1, 0, 0, 0),
            "not idle long enough yet"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        wait_virtual("the idle object is closed", Duration::from_secs(5), || {
            f.closed() == [0]
        })
        .await;
        assert_eq!(occupancy(&pool), (0, 0, 0, 0, 0));
    });
}

/// Regression: under paused time, an object past its lifetime was still
/// handed out (the acquire read the system clock).
#[test]
fn paused_time_drives_the_max_lifetime() {
    paused(async {
        const HOUR: Duration = Duration::from_secs(3600);
        let f = Edgy::new();
        let pool: EdgePool<Tokio> = Pool::builder(f.clone())
            .max_size(1)
            .max_lifetime(HOUR)
            .build()
            .unwrap();
        assert_eq!(pool.acquire().await.unwrap().0, 0);
        tokio::time::sleep(HOUR - Duration::from_secs(1)).await;
        assert_eq!(pool.acquire().await.unwrap().0, 0, "still young");
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Virtual time stands still while this task runs.
        let now = pool.runtime().now();
        let renewed = pool.acquire().await.unwrap();
        assert_eq!(renewed.0, 1, "a new one: 0 outlived");
        assert_eq!(
            renewed.meta().created_at,
            now,
            "its creation time is on the runtime's clock"
        );
        wait_virtual("the old object is closed", Duration::from_secs(5), || {
            f.closed() == [0]
        })
        .await;
    });
}

/// Under paused time, the wait and create timeouts fire when virtual time
/// reaches them: an hour's wait and half an hour's creation pass in no
/// real time, each exactly on time.
#[test]
fn paused_time_drives_the_wait_and_create_timeouts() {
    paused(async {
        const HOUR: Duration = Duration::from_secs(3600);
        let f = Edgy::new();
        let pool: EdgePool<Tokio> = Pool::builder(f.clone())
            .max_size(1)
            .wait_timeout(HOUR)
            .create_timeout(HOUR / 2)
            .build()
            .unwrap();
        f.hold();
        let start = tokio::time::Instant::now();
        let held = pool.acquire().await.map(|g| g.0);
        assert!(
            matches!(held, Err(PoolError::Timeout(TimeoutKind::Create))),
            "{held:?}"
        );
        assert_eq!(start.elapsed(), HOUR / 2, "the create timeout, on time");
        f.open();
        let kept = pool.acquire().await.unwrap();
        let start = tokio::time::Instant::now();
        let waited = pool.acquire().await.map(|g| g.0);
        assert!(
            matches!(waited, Err(PoolError::Timeout(TimeoutKind::Wait))),
            "{waited:?}"
        );
        assert_eq!(start.elapsed(), HOUR, "the wait timeout, on time");
        drop(kept);
    });
}

/// A runtime whose clock is tokio's moved forward by a shift the test sets:
/// a stand-in for a custom executor's virtual clock.
#[derive(Clone)]
struct Shifted {
    tokio: Tokio,
    shift: Arc<Mutex<Duration>>,
}

impl Shifted {
    /// The current tokio runtime's clock, not shifted yet.
    fn current() -> Self {
        Shifted {
            tokio: Tokio::current(),
            shift: Arc::default(),
        }
    }
}

impl Runtime for Shifted {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.tokio.sleep(duration)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        self.tokio.spawn(future);
    }

    fn now(&self) -> Instant {
        self.tokio.now() + *lock(&self.shift)
    }
}

/// The pool reads its time from `Runtime::now` only: a custom runtime's
/// clock moved forward past `max_lifetime` ages the pool's objects, though
/// no real time passed.
#[test]
fn a_custom_runtime_clock_drives_the_pool() {
    const HOUR: Duration = Duration::from_secs(3600);
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let f = Edgy::new();
        let clock = Shifted::current();
        let pool = wtpool::Builder::new(f.clone(), clock.clone())
            .max_size(1)
            .max_lifetime(HOUR)
            .build()
            .unwrap();
        assert_eq!(pool.acquire().await.unwrap().0, 0);
        assert_eq!(pool.acquire().await.unwrap().0, 0, "still young");
        *lock(&clock.shift) = HOUR;
        let shifted = clock.now();
        let renewed = pool.acquire().await.unwrap();
        assert_eq!(renewed.0, 1, "a new one: 0 outlived its hour");
        assert!(
            renewed.meta().created_at >= shifted,
            "its creation time is on the shifted clock"
        );
    });
}

/// A release reads the clock only when a limit needs the time: without
/// `idle_timeout` or `max_lifetime`, it stamps `last_used` with the end of
/// the latest creation (a coarse clock, no earlier than the object's own
/// creation); with `idle_timeout`, with the release's own time.
#[test]
fn a_release_reads_the_clock_only_when_a_limit_needs_it() {
    const HOUR: Duration = Duration::from_secs(3600);
    for idle_timeout in [None, Some(2 * HOUR)] {
        let runtime = current_thread_runtime();
        runtime.block_on(async {
            let f = Edgy::new();
            let clock = Shifted::current();
            let mut builder = wtpool::Builder::new(f.clone(), clock.clone()).max_size(2);
            if let Some(timeout) = idle_timeout {
                builder = builder.idle_timeout(timeout);
            }
            let pool = builder.build().unwrap();
            let first = pool.acquire().await.unwrap();
            let created = first.meta().created_at;
            *lock(&clock.shift) = HOUR;
            let released_at = clock.now();
            drop(first);
            let again = pool.acquire().await.unwrap();
            match idle_timeout {
                None => assert_eq!(again.meta().last_used, created, "the coarse clock"),
                Some(_) => assert!(again.meta().last_used >= released_at, "the exact time"),
            }
            // A creation moves the coarse clock on.
            let second = pool.acquire().await.unwrap();
            assert!(second.meta().created_at >= released_at);
            drop(again);
            let reused = pool.acquire().await.unwrap();
            assert_eq!(reused.0, 0);
            assert!(reused.meta().last_used >= second.meta().created_at);
        });
    }
}

/// Regression (review): a waiter that left after an object was delivered
/// into its slot gave it back stamped with the exact clock, and the next
/// plain release stamped the coarse clock, earlier: `last_used` went back an
/// hour. Every give-back without `idle_timeout` or `max_lifetime` now
/// stamps the coarse clock.
#[test]
fn last_used_never_goes_back_when_a_served_waiter_leaves() {
    const HOUR: Duration = Duration::from_secs(3600);
    current_thread_runtime().block_on(async {
        let clock = Shifted::current();
        let pool = wtpool::Builder::new(Edgy::new(), clock.clone())
            .max_size(1)
            .build()
            .unwrap();
        let first = pool.acquire().await.unwrap();
        let mut waiter = Box::pin(pool.acquire());
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        *lock(&clock.shift) = HOUR;
        drop(first); // delivered into the waiter's slot
        drop(waiter); // which leaves without taking it
        let again = pool.acquire().await.unwrap();
        let stamped = again.meta().last_used;
        drop(again);
        let third = pool.acquire().await.unwrap();
        assert!(third.meta().last_used >= stamped, "last_used went back");
        assert!(stamped >= third.meta().created_at);
    });
}

/// Regression (review): the waker was cloned after the waiter was queued,
/// so a waker whose `clone` panics left a waiter queued with no slot to
/// deliver to; the next object given back went to it and was lost, and
/// every later acquire waited for ever. The waker is now cloned first.
#[test]
fn a_waker_whose_clone_panics_queues_nothing() {
    use std::task::{Context, RawWaker, RawWakerVTable, Waker};
    fn clone(_: *const ()) -> RawWaker {
        panic!("{ASKED}: this waker cannot be cloned")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions never touch the data pointer (null),
    // and `clone` panics instead of returning a waker.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    current_thread_runtime().block_on(async {
        let pool: EdgePool<Tokio> = Pool::builder(Edgy::new())
            .max_size(1)
            .wait_timeout(PATIENCE)
            .build()
            .unwrap();
        let held = pool.acquire().await.unwrap();
        let mut acquire = Box::pin(pool.acquire());
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            acquire.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        assert!(polled.is_err(), "the clone panicked");
        drop(acquire);
        assert_eq!(occupancy(&pool), (1, 0, 1, 0, 0), "nobody queued");
        drop(held);
        assert_eq!(occupancy(&pool), (1, 1, 0, 0, 0), "back to idle");
        assert_eq!(pool.acquire().await.unwrap().0, 0);
    });
}

/// Regression: under paused time, a failed `min_idle` refill was retried
/// when the system clock, not the runtime's, passed the back-off. Now the
/// retries come at the back-off's steps of virtual time: 100 ms, doubling,
/// up to 5 s. (This also guards the upkeep task against sleeping through a
/// deadline that came earlier, which `min_idle_refill_retry_follows_the_backoff`
/// in tests/async_pool.rs cannot time on a busy machine.)
#[test]
fn paused_time_drives_the_refill_backoff() {
    paused(async {
        const FAILURES: usize = 8;
        let f = Edgy::new();
        f.fail_creates(FAILURES);
        let pool: EdgePool<Tokio> = Pool::builder(f.clone())
            .max_size(1)
            .min_idle(1)
            .build()
            .unwrap();
        wait_virtual("the refill succeeds", Duration::from_secs(60), || {
            occupancy(&pool) == (1, 1, 0, 0, 0)
        })
        .await;
        let calls = f.create_calls();
        assert_eq!(calls.len(), FAILURES + 1);
        let mut backoff = REFILL_BACKOFF_MIN;
        for (n, pair) in calls.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= backoff && gap <= backoff + Duration::from_millis(5),
                "retry {n} came {gap:?} after the failure, not {backoff:?}"
            );
            backoff = (backoff * 2).min(REFILL_BACKOFF_MAX);
        }
    });
}
