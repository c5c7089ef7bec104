//! loom models of the async pool's synchronisation: acquire, release,
//! cancellation, close and a wait timeout racing each other.
//!
//! Run them with
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release --test loom
//! ```
//!
//! (`.ci/run` does; the separate target dir keeps `--cfg loom` from
//! invalidating the normal build.) Built with `--cfg loom`, the pool's `Arc`
//! and `Mutex` are loom's (`src/sync.rs`), and so are the threads, atomics
//! and wakers here: loom runs each model once for every interleaving of those
//! operations (up to `LOOM_MAX_PREEMPTIONS` preemptions, 3 unless the
//! environment says otherwise: about 130,000 interleavings in all, under 20 s
//! on 2 cores; 4 takes about 3 minutes), and fails a model on a panic, a
//! deadlock (a waiter nobody wakes: a lost wake-up) or a leaked `Arc` (a pool
//! handle or task that never ends). Each model prints how many interleavings
//! it explored. The loom build leaves out the dev-dependencies (Cargo.toml:
//! smol's async-io does not build under `cfg(loom)`): this file uses only
//! the crate's own dependencies.
//!
//! The runtime of the models, [`LoomRuntime`], spawns each task on a loom
//! thread that blocks on it, and its `sleep` is a [`Timer`] the model fires
//! from a thread of its own: a wait timeout that can fire at any point of an
//! acquire. The factory, [`Books`], keeps its own record of what it created,
//! lent and closed, with plain std types that loom does not schedule on (it
//! is bookkeeping, not what is under test).
//!
//! The pools here have no upkeep task (no `min_idle`, `idle_timeout`,
//! `max_lifetime` or `idle_check_interval`): it holds the pool by a `Weak`,
//! which loom's `Arc` does not have, and it waits on `event_listener`. Each
//! model keeps to 2 or 3 threads of its own besides the pool's tasks, and
//! `max_size` 1, so that all of them finish in a few minutes on 2 cores.
#![cfg(loom)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{Either, select};
use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread::{self, JoinHandle};
use wtpool::{
    Builder, Factory, Lease, Pool, PoolError, Pooled, Runtime, SharedPool, Status, TimeoutKind,
};

// ----- the runtime -----

/// A timer the model fires by hand, from any thread; every `sleep` on it
/// completes once it fired.
#[derive(Default)]
struct Timer {
    fired: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Timer {
    fn fire(&self) {
        let wakers = {
            let mut wakers = self.wakers.lock().unwrap();
            self.fired.store(true, Ordering::SeqCst);
            std::mem::take(&mut *wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

struct Sleep {
    timer: Arc<Timer>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut wakers = self.timer.wakers.lock().unwrap();
        if self.timer.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Spawns each task on a loom thread that blocks on it; sleeps on the
/// model's [`Timer`]. Keeps the tasks' handles so that a model can wait for
/// every task the pool spawned (creations, closes) before it checks the books.
#[derive(Clone)]
struct LoomRuntime {
    timer: Arc<Timer>,
    tasks: std::sync::Arc<StdMutex<Vec<JoinHandle<()>>>>,
}

impl LoomRuntime {
    fn new() -> Self {
        LoomRuntime {
            timer: Arc::new(Timer::default()),
            tasks: Default::default(),
        }
    }

    /// Waits until every task the pool spawned has ended (tasks that spawn
    /// more tasks included).
    fn join_tasks(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                task.join().expect("a pool task panicked");
            }
        }
    }
}

impl Runtime for LoomRuntime {
    fn sleep(&self, _: Duration) -> impl Future<Output = ()> + Send + 'static {
        Sleep {
            timer: self.timer.clone(),
        }
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = thread::spawn(move || block_on(future));
        self.tasks.lock().unwrap().push(task);
    }
}

// ----- the factory -----

/// The factory's own books: objects created, lent out now, closed.
#[derive(Default, Debug)]
struct Book {
    created: usize,
    lent: BTreeSet<usize>,
    lent_twice: Vec<usize>,
    closes: BTreeMap<usize, usize>,
    /// Shared leases out now, per object, and the most seen on one object.
    leases: BTreeMap<usize, usize>,
    most_leases: usize,
}

#[derive(Clone, Default)]
struct Books(std::sync::Arc<StdMutex<Book>>);

#[derive(Debug)]
struct Obj(usize);

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

impl Factory for Books {
    type Object = Obj;
    type Error = Never;

    async fn create(&self) -> Result<Obj, Never> {
        let mut book = self.0.lock().unwrap();
        book.created += 1;
        Ok(Obj(book.created - 1))
    }

    async fn close(&self, object: Obj) -> Result<(), Never> {
        *self.0.lock().unwrap().closes.entry(object.0).or_default() += 1;
        Ok(())
    }
}

impl Books {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap()
    }

    /// Uses a borrowed object for a moment, recording the loan: an object
    /// lent to two borrowers at once is written down (and fails the model).
    fn use_object(&self, guard: Pooled<Books, LoomRuntime>) {
        let id = guard.0;
        if !self.book().lent.insert(id) {
            self.book().lent_twice.push(id);
        }
        thread::yield_now();
        self.book().lent.remove(&id);
        drop(guard);
    }

    /// Every object created was closed exactly once, except the `idle` ones,
    /// never closed; none was lent to two borrowers at once.
    fn check(&self, idle: usize) {
        let book = self.book();
        assert!(book.lent_twice.is_empty(), "lent twice: {book:?}");
        assert!(book.lent.is_empty(), "still lent: {book:?}");
        let closed: usize = book.closes.values().sum();
        assert!(book.closes.values().all(|&n| n == 1), "{book:?}");
        assert_eq!(closed + idle, book.created, "{book:?}");
    }
}

// ----- the harness -----

type LoomPool = Pool<Books, LoomRuntime>;

/// The fewest interleavings a model must explore (they explore hundreds to
/// thousands): fewer means it no longer races anything.
const MIN_RUNS: usize = 5;
type Outcome = Result<Pooled<Books, LoomRuntime>, PoolError<Never>>;

/// Runs `model` under loom, with at most 3 preemptions unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise, and prints how many interleavings
/// it explored (at least `min_runs`: a model that races nothing fails).
fn model(min_runs: usize, model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    let name = std::thread::current().name().unwrap_or("model").to_owned();
    println!(
        "{name}: {runs} interleavings (preemption bound {:?}) in {:.1?}",
        builder.preemption_bound,
        started.elapsed()
    );
    assert!(
        runs >= min_runs,
        "{name} explored only {runs} interleavings"
    );
}

/// A pool of at most one object, with a wait timeout on the model's timer if
/// asked.
fn pool(wait_timeout: bool) -> (LoomPool, Books, LoomRuntime) {
    let books = Books::default();
    let runtime = LoomRuntime::new();
    let builder = Builder::new(books.clone(), runtime.clone()).max_size(1);
    let builder = if wait_timeout {
        builder.wait_timeout(Duration::from_secs(1))
    } else {
        builder
    };
    (builder.build().expect("a valid pool"), books, runtime)
}

/// (size, idle, in_use, creating, waiting)
fn occupancy(s: Status) -> (usize, usize, usize, usize, usize) {
    assert_eq!(s.size, s.idle + s.in_use + s.creating, "{s:?}");
    (s.size, s.idle, s.in_use, s.creating, s.waiting)
}

/// Polls `future` once, with a waker that does nothing, and drops it.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

// ----- the models -----

/// A waiter queued behind a held object is woken when it comes back: no lost
/// wake-up between its registering its waker and the release.
#[test]
fn release_wakes_the_queued_acquire() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(false);
        let held = block_on(pool.acquire()).expect("the first object");
        let waiter = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || {
                let guard = block_on(pool.acquire()).expect("the object, once given back");
                books.use_object(guard);
            })
        };
        books.use_object(held);
        waiter.join().unwrap();
        runtime.join_tasks();
        assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0));
        assert_eq!(pool.counters().checkouts, 2);
        assert_eq!(books.book().created, 1);
        books.check(1);
    });
}

/// Two borrowers race for one object (one of them waits for its creation):
/// both are served, one after the other, never at once.
#[test]
fn two_borrowers_never_share_the_object() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(false);
        let borrowers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, books) = (pool.clone(), books.clone());
                thread::spawn(move || {
                    let guard = block_on(pool.acquire()).expect("served");
                    books.use_object(guard);
                })
            })
            .collect();
        for borrower in borrowers {
            borrower.join().unwrap();
        }
        runtime.join_tasks();
        assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0));
        assert_eq!(pool.counters().checkouts, 2);
        assert_eq!(books.book().created, 1, "max_size 1: one creation");
        books.check(1);
    });
}

/// An acquire polled once and dropped, while the object comes back: whether
/// the release comes before its poll (it is served at once), between its poll
/// and its drop (served into its slot, then cancelled: the object is passed
/// on, and not counted as a checkout), while it takes its token out to
/// leave (the machine gives the object back) or after its drop (nobody
/// waits), the object ends up idle.
#[test]
fn cancelled_acquire_races_the_release() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(false);
        let held = block_on(pool.acquire()).expect("the first object");
        let canceller = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || {
                let Poll::Ready(outcome) = poll_once(pool.acquire()) else {
                    return false;
                };
                books.use_object(outcome.expect("served at once"));
                true
            })
        };
        drop(held);
        let served = canceller.join().unwrap();
        runtime.join_tasks();
        assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0), "nothing leaked");
        assert_eq!(
            pool.counters().checkouts,
            1 + u64::from(served),
            "an object served to a waiter that left is no checkout"
        );
        let again = block_on(pool.acquire()).expect("the idle object");
        assert_eq!(again.0, 0);
        drop(again);
        assert_eq!(books.book().created, 1);
        books.check(1);
    });
}

/// An acquire dropped while the creation started for it finishes: whether
/// the object reached it before its first poll ended (it is then served) or
/// not, the new object ends up idle and its slot is not lost.
#[test]
fn cancelled_acquire_races_its_creation() {
    // The first poll of a queued acquire returns at once (its waker went in
    // with the queueing), so only the cancel races the creation: few
    // interleavings, but at least the orders of those two.
    model(3, || {
        let (pool, books, runtime) = pool(false);
        if let Poll::Ready(outcome) = poll_once(pool.acquire()) {
            books.use_object(outcome.expect("served by its creation"));
        }
        runtime.join_tasks();
        assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0));
        let again = block_on(pool.acquire()).expect("the orphaned object");
        assert_eq!(again.0, 0);
        drop(again);
        assert_eq!(books.book().created, 1);
        books.check(1);
    });
}

/// A wait timeout fires while the held object comes back: the waiter gets
/// the object or a timeout, and in both cases the object ends up idle, not
/// stranded with a waiter that left.
#[test]
fn wait_timeout_races_the_release() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(true);
        let held = block_on(pool.acquire()).expect("the first object");
        let waiter = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || match block_on(pool.acquire()) {
                Ok(guard) => {
                    books.use_object(guard);
                    true
                }
                Err(PoolError::Timeout(TimeoutKind::Wait)) => false,
                Err(other) => panic!("neither the object nor a wait timeout: {other:?}"),
            })
        };
        let timer = {
            let runtime = runtime.clone();
            thread::spawn(move || runtime.timer.fire())
        };
        drop(held);
        let served = waiter.join().unwrap();
        timer.join().unwrap();
        runtime.join_tasks();
        assert_eq!(
            occupancy(pool.status()),
            (1, 1, 0, 0, 0),
            "nothing stranded"
        );
        assert_eq!(pool.counters().checkouts, 1 + u64::from(served));
        books.check(1);
    });
}

/// The pool closes while a waiter waits for the held object, which comes
/// back around the close: the waiter gets the object (given back before the
/// close, then closed when the waiter drops it) or `Closed`; either way every
/// object is closed exactly once and nothing is left.
#[test]
fn close_races_acquire_and_release() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(false);
        let held = block_on(pool.acquire()).expect("the first object");
        let waiter = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || match block_on(pool.acquire()) {
                Ok(guard) => books.use_object(guard),
                Err(PoolError::Closed) => {}
                Err(other) => panic!("neither the object nor Closed: {other:?}"),
            })
        };
        drop(held);
        block_on(pool.close()).expect("closes cleanly");
        waiter.join().unwrap();
        runtime.join_tasks();
        let s = pool.status();
        assert!(s.closed);
        assert_eq!(occupancy(s), (0, 0, 0, 0, 0));
        assert!(matches!(block_on(pool.acquire()), Err(PoolError::Closed)));
        books.check(0);
    });
}

/// The pool closes while the creation for a waiter is in flight: the waiter
/// gets `Closed` (or the object, if it came first, closed when dropped), and
/// the late object is closed, exactly once.
#[test]
fn close_races_a_creation() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(false);
        let waiter = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || match block_on(pool.acquire()) {
                Ok(guard) => books.use_object(guard),
                Err(PoolError::Closed) => {}
                Err(other) => panic!("neither the object nor Closed: {other:?}"),
            })
        };
        block_on(pool.close()).expect("closes cleanly");
        waiter.join().unwrap();
        runtime.join_tasks();
        assert_eq!(occupancy(pool.status()), (0, 0, 0, 0, 0));
        books.check(0);
    });
}

/// A wait timeout and a cancellation (the future dropped by a `select`) on
/// two waiters, while the object comes back: the one still there is served
/// or times out; nothing is stranded.
#[test]
fn timeout_and_cancel_race_the_release() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = pool(true);
        let held = block_on(pool.acquire()).expect("the first object");
        let timed = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || match block_on(pool.acquire()) {
                Ok(guard) => books.use_object(guard),
                Err(PoolError::Timeout(TimeoutKind::Wait)) => {}
                Err(other) => panic!("neither the object nor a wait timeout: {other:?}"),
            })
        };
        let cancelled = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || {
                // Given up as soon as it was polled once and found waiting.
                let mut first = true;
                let give_up = std::future::poll_fn(move |cx| {
                    if std::mem::take(&mut first) {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                });
                let outcome: Option<Outcome> =
                    match block_on(select(pin!(pool.acquire()), pin!(give_up))) {
                        Either::Left((outcome, _)) => Some(outcome),
                        Either::Right(_) => None,
                    };
                match outcome {
                    Some(Ok(guard)) => books.use_object(guard),
                    // It has the pool's wait timeout too.
                    Some(Err(PoolError::Timeout(TimeoutKind::Wait))) | None => {}
                    Some(Err(other)) => panic!("neither the object nor a timeout: {other:?}"),
                }
            })
        };
        drop(held);
        runtime.timer.fire();
        timed.join().unwrap();
        cancelled.join().unwrap();
        runtime.join_tasks();
        assert_eq!(
            occupancy(pool.status()),
            (1, 1, 0, 0, 0),
            "nothing stranded"
        );
        books.check(1);
    });
}

// ----- shared leases -----

/// The factory of the shared models: handles on the objects of [`Books`]
/// (std's `Arc`: bookkeeping, not under test), with the same books.
#[derive(Clone, Default)]
struct SharedBooks(Books);

impl Factory for SharedBooks {
    type Object = std::sync::Arc<Obj>;
    type Error = Never;

    async fn create(&self) -> Result<std::sync::Arc<Obj>, Never> {
        self.0.create().await.map(std::sync::Arc::new)
    }

    async fn close(&self, object: std::sync::Arc<Obj>) -> Result<(), Never> {
        *self.0.book().closes.entry(object.0).or_default() += 1;
        Ok(())
    }
}

impl SharedBooks {
    /// Uses a lease for a moment, counting the leases out on its object.
    fn use_lease(&self, lease: Lease<SharedBooks, LoomRuntime>) {
        let id = lease.0;
        {
            let mut book = self.0.book();
            let out = book.leases.entry(id).or_default();
            *out += 1;
            let out = *out;
            book.most_leases = book.most_leases.max(out);
        }
        thread::yield_now();
        *self.0.book().leases.get_mut(&id).expect("counted above") -= 1;
        drop(lease);
    }
}

type LoomShared = SharedPool<SharedBooks, LoomRuntime>;

/// A shared pool of one object with two leases.
fn shared_pool() -> (LoomShared, SharedBooks, LoomRuntime) {
    let books = SharedBooks::default();
    let runtime = LoomRuntime::new();
    let pool = Builder::new(books.clone(), runtime.clone())
        .max_size(1)
        .build_shared(2)
        .expect("a valid pool");
    (pool, books, runtime)
}

/// Two borrowers race for the one free lease of an object of two, while
/// the held one comes back: all are served, never more than two at once,
/// from one creation, and every lease comes back.
#[test]
fn shared_leases_never_exceed_max_leases() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = shared_pool();
        let held = block_on(pool.acquire()).expect("the first lease");
        let borrowers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, books) = (pool.clone(), books.clone());
                thread::spawn(move || {
                    let lease = block_on(pool.acquire()).expect("served");
                    books.use_lease(lease);
                })
            })
            .collect();
        books.use_lease(held);
        for borrower in borrowers {
            borrower.join().unwrap();
        }
        runtime.join_tasks();
        let status = pool.status();
        assert_eq!(occupancy(status), (1, 1, 0, 0, 0));
        assert_eq!(status.leases, 0);
        assert_eq!(pool.counters().checkouts, 3);
        let book = books.0.book();
        assert_eq!(book.created, 1, "max_size 1: one creation");
        assert!(book.most_leases <= 2, "{book:?}");
    });
}

/// An acquire polled once and dropped behind a full object, while one of
/// its two leases comes back: served at once, served and then cancelled
/// (the lease is passed on and comes back), or never served; every lease
/// comes back and the object ends up idle.
#[test]
fn cancelled_shared_acquire_races_a_lease_coming_back() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = shared_pool();
        let a = block_on(pool.acquire()).expect("a lease");
        let b = block_on(pool.acquire()).expect("a second lease");
        let canceller = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || {
                if let Poll::Ready(outcome) = poll_once(pool.acquire()) {
                    books.use_lease(outcome.expect("served at once"));
                }
            })
        };
        drop(a);
        canceller.join().unwrap();
        assert_eq!(pool.status().leases, 1, "only b is out");
        drop(b);
        runtime.join_tasks();
        let status = pool.status();
        assert_eq!((occupancy(status), status.leases), ((1, 1, 0, 0, 0), 0));
        assert_eq!(books.0.book().created, 1);
    });
}

/// The pool closes while a waiter queues behind a full object whose
/// leases come back around the close: the waiter gets a lease (its object
/// closed once its last lease is back) or `Closed`; the object is closed
/// exactly once and nothing is left.
#[test]
fn close_races_shared_leases_coming_back() {
    model(MIN_RUNS, || {
        let (pool, books, runtime) = shared_pool();
        let a = block_on(pool.acquire()).expect("a lease");
        let b = block_on(pool.acquire()).expect("a second lease");
        let waiter = {
            let (pool, books) = (pool.clone(), books.clone());
            thread::spawn(move || match block_on(pool.acquire()) {
                Ok(lease) => books.use_lease(lease),
                Err(PoolError::Closed) => {}
                Err(other) => panic!("neither a lease nor Closed: {other:?}"),
            })
        };
        drop(a);
        block_on(pool.close()).expect("closes cleanly");
        drop(b);
        waiter.join().unwrap();
        runtime.join_tasks();
        let status = pool.status();
        assert!(status.closed);
        assert_eq!((occupancy(status), status.leases), ((0, 0, 0, 0, 0), 0));
        books.0.check(0);
    });
}
