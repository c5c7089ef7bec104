//! Chaos soak of the async pool, on both runtimes: 100,000 operations by 64
//! tasks while creations fail 20% of the time and time out, objects die,
//! acquires are cancelled at random points and time out, and the pool is
//! shrunk, grown and closed in the middle of it all; between the phases of
//! the chaos, checkpoints take the pool through each fault once more, one
//! step at a time, where the outcome of every step is decided by the pool's
//! state and not by timers.
//!
//! Each run is seeded. The seed is printed (shown with the output of a test
//! that fails); `WTPOOL_SOAK_SEED=<n> cargo test --test soak` replays it: the
//! same pool settings, the same operations in each task and the same fault
//! draws of the factory, in the order the runtime happens to run them (the
//! threads' interleaving is the runtime's, not the seed's). Without the
//! variable the seed comes from the clock.
//!
//! No assertion depends on how fast the machine is or how the threads are
//! scheduled. Timeouts fire by design, and how many fire depends on the
//! speed of the machine: timeouts are counted but decide nothing. What is
//! asserted is what the pool guarantees whatever the speed:
//!
//! - an operation is patient (90%) or cancellable (10%). A patient one
//!   retries its acquire after each failure (wait timeout, create timeout,
//!   failed creation) until it is served, or fails with `Closed`, which only
//!   an operation under way when the pool closes (at most one per task) or
//!   started after it may get. So every patient operation before the close
//!   is served, however many of its acquires time out: if the pool lost all
//!   its capacity they would stop finishing, and the run fails when no
//!   operation has finished for `STALL` (a watchdog on progress, not a
//!   deadline on the run); a slot lost, or a waiter stranded, shows at the
//!   next checkpoint;
//! - every operation started after the close fails with `Closed`;
//! - at each checkpoint (after 25%, 40% and 70% of the operations, the tasks
//!   stopped): every object was given back and no waiter is left; once the
//!   creations in flight finish, every object created is idle or closed
//!   once. Then, with the factory's random faults off, each step is forced:
//!   the pool lends exactly its `max_size` at once; full, an acquire times
//!   out (`TimeoutKind::Wait`); a queued acquire that is dropped leaves the
//!   queue and takes nothing with it, and one dropped after it was handed an
//!   object passes it on (to the next waiter, or to the idle list); two
//!   queued acquires are served first come first served, each woken by the
//!   hand-off; an object that dies in use is closed and its slot refilled; a
//!   failed creation (`Create`) and a creation held past the create timeout
//!   (`TimeoutKind::Create`) fail the waiter they were meant for and free
//!   their slot; an idle object that died is closed at checkout, never
//!   handed out, and replaced. An acquire whose outcome depends on a
//!   creation is polled once, left alone (so that its own wait timeout
//!   cannot fire) until no creation is in flight, and polled again: it must
//!   be served, and woken. Waits for what other tasks do (a creation, a
//!   close, a wake) end when it happens, and fail only after `STALL`.
//!
//! The chaos, per operation (one acquire and, if it succeeds, one use):
//!
//! - creation fails with probability 20% (the factory's seeded draws), and
//!   takes a random time up to 1.5 times the create timeout, so about a third
//!   of the creations that do not fail time out (`TimeoutKind::Create`);
//! - 10% of the operations are cancellable: one acquire, given up at a random
//!   point, after 1 to 4 polls or after a random time up to 2 ms (a deadline
//!   of the caller's own);
//! - every acquire has the pool's wait timeout, 2 to 10 ms by the seed, short
//!   enough that many fire (`TimeoutKind::Wait`);
//! - 10% of the objects used die: 7 in 10 of them while in use (killed by
//!   their borrower before giving them back), 3 in 10 while idle (the next
//!   operation that finds an idle object kills it in a `retain` pass, under
//!   the pool's lock, so that it is found dead at checkout);
//! - a quarter of the operations start after a pause of up to 2 ms, and
//!   every 10,000 operations the next 256 start after a pause of 3 ms: 64
//!   tasks keep 8 objects busy, so the load needs these lulls for objects to
//!   idle (and die idle);
//! - at 30% of the operations the pool shrinks from 8 to 3, at 50% it grows
//!   to 12, at 80% it closes; the operations after that fail with `Closed`.
//!
//! Checked while it runs: the status adds up at every sample and no object
//! is ever lent to two borrowers at once (the factory's `lend` panics), nor
//! handed out dead. Checked after it: the outcomes add up to the operations,
//! the pool is empty with no waiter left, every object created was closed
//! exactly once (none is idle: the pool is closed), and the pool's counters
//! agree with the factory's books and the tasks' tallies.

#[path = "support/counting.rs"]
mod counting;
#[path = "support/harness.rs"]
mod harness;

use std::future::Future;
use std::ops::AddAssign;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::{Either, join_all, select};
use wtpool::{Pool, PoolError, TimeoutKind};
use wtpool_smol::Smol;
use wtpool_tokio::Tokio;

use counting::{Counting, Lent, TestError};
use harness::{TestRuntime, checked};

/// Operations in all, by all tasks.
const OPERATIONS: usize = 100_000;
/// Tasks operating at once.
const TASKS: usize = 64;
/// The pool's size at the start, after the shrink, and after the growth.
const MAX_SIZE: usize = 8;
const SHRUNK: usize = 3;
const GROWN: usize = 12;
/// The operations at which the pool shrinks, grows and closes.
const SHRINK_AT: usize = OPERATIONS * 3 / 10;
const GROW_AT: usize = OPERATIONS / 2;
const CLOSE_AT: usize = OPERATIONS * 4 / 5;
/// The phases of the chaos: each ends before the operation given, and the
/// tasks stop there for a checkpoint of a pool of the size given (none after
/// the last: the pool is closed).
const PHASES: [(usize, Option<usize>); 4] = [
    (OPERATIONS / 4, Some(MAX_SIZE)),
    (OPERATIONS * 2 / 5, Some(SHRUNK)),
    (OPERATIONS * 7 / 10, Some(GROWN)),
    (OPERATIONS, None),
];
/// Creations that fail, in thousandths.
const CREATE_FAIL_PERMILLE: u64 = 200;
/// Operations that are cancellable (one acquire, given up at a random point),
/// in thousandths.
const CANCEL_PERMILLE: u64 = 100;
/// Objects used that die, in thousandths (in use or, 3 in 10, while idle).
const DIE_PERMILLE: u64 = 100;
/// Every `LULL_EVERY` operations, the next `LULL_OPERATIONS` start after a
/// pause of `LULL`, so that objects idle.
const LULL_EVERY: usize = 10_000;
const LULL_OPERATIONS: usize = 256;
const LULL: Duration = Duration::from_millis(3);
/// How long the run may go without any operation (or checkpoint step)
/// finishing, or a wait for the pool to settle may take, before it is
/// declared hung. A bound on a lack of progress, not on the run: a slow
/// machine makes progress, only a hang does not.
const STALL: Duration = Duration::from_secs(60);

type TestPool<R> = Pool<Counting<R>, R>;
type Outcome<R> = Result<wtpool::Pooled<Counting<R>, R>, PoolError<TestError>>;

// ----- the runtimes: tests/support/harness.rs -----

async fn sleep<R: TestRuntime>(duration: Duration) {
    R::default().sleep(duration).await;
}

// ----- randomness -----

/// The soak's random draws, all from one seeded generator.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(0..n)
    }

    /// True with probability `permille / 1000`.
    fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// `WTPOOL_SOAK_SEED` if set, else one from the clock.
fn seed() -> u64 {
    match std::env::var("WTPOOL_SOAK_SEED") {
        Ok(seed) => seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("WTPOOL_SOAK_SEED must be a u64, not {seed:?}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64,
    }
}

// ----- the run -----

/// The pool's settings, drawn from the seed.
#[derive(Debug, Clone, Copy)]
struct Settings {
    wait_timeout: Duration,
    create_timeout: Duration,
    max_create_delay: Duration,
}

impl Settings {
    fn draw(rng: &mut Rng) -> Self {
        let wait_timeout = Duration::from_millis(2 + rng.below(9));
        let create_timeout = Duration::from_millis(2 + rng.below(5));
        Settings {
            wait_timeout,
            create_timeout,
            max_create_delay: create_timeout * 3 / 2,
        }
    }
}

/// What the operations of one task (or of all, or the checkpoints) came to.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    // How the operations ended: these add up to the operations.
    served: u64,
    /// Cancellable operations given up before their acquire finished.
    cancelled: u64,
    /// Cancellable operations whose one acquire failed (not with `Closed`).
    failed: u64,
    closed: u64,

    /// Patient operations (the others are cancellable).
    patient: u64,
    /// Operations started after the close (all end `Closed`).
    after_close: u64,
    /// Operations started before the close that ended `Closed`: at most one
    /// per task was under way when the pool closed.
    closed_under_way: u64,

    // Acquires that failed, by error: a patient operation retries, so one
    // operation may fail several times before it is served.
    create_errors: u64,
    wait_timeouts: u64,
    create_timeouts: u64,
    aborted: u64,

    /// Objects killed while their task held them.
    died_in_use: u64,
    /// Idle objects killed in a `retain` pass.
    died_idle: u64,
    released: u64,
    discarded: u64,
}

impl Tally {
    fn operations(&self) -> u64 {
        self.served + self.cancelled + self.failed + self.closed
    }

    /// Counts an acquire that failed with `error` (other than `Closed`).
    fn failed_acquire(&mut self, error: &PoolError<TestError>) {
        match error {
            PoolError::Create(_) => self.create_errors += 1,
            PoolError::Timeout(TimeoutKind::Wait) => self.wait_timeouts += 1,
            PoolError::Timeout(TimeoutKind::Create) => self.create_timeouts += 1,
            PoolError::CreateAborted => self.aborted += 1,
            other => panic!("an acquire failed with {other:?}"),
        }
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.served += o.served;
        self.cancelled += o.cancelled;
        self.failed += o.failed;
        self.closed += o.closed;
        self.patient += o.patient;
        self.after_close += o.after_close;
        self.closed_under_way += o.closed_under_way;
        self.create_errors += o.create_errors;
        self.wait_timeouts += o.wait_timeouts;
        self.create_timeouts += o.create_timeouts;
        self.aborted += o.aborted;
        self.died_in_use += o.died_in_use;
        self.died_idle += o.died_idle;
        self.released += o.released;
        self.discarded += o.discarded;
    }
}

/// What the tasks and the checkpoints share.
struct Run<R: TestRuntime> {
    pool: TestPool<R>,
    factory: Counting<R>,
    /// The next operation to start.
    next: AtomicUsize,
    /// Idle objects still to kill (see `worker`).
    idle_deaths: AtomicUsize,
    /// Set just before the pool is closed, and once it is.
    closing: AtomicBool,
    closed: AtomicBool,
    /// Operations and checkpoint steps finished, for the stall watchdog.
    progress: AtomicUsize,
}

impl<R: TestRuntime> Run<R> {
    /// Takes the next operation below `end`, if any is left.
    fn take_operation(&self, end: usize) -> Option<usize> {
        self.next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < end).then_some(n + 1)
            })
            .ok()
    }

    fn progressed(&self) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }

    /// Records `guard` as lent out, after checking that it is alive (the
    /// factory's `lend` checks that no one else holds it).
    fn lend(&self, guard: wtpool::Pooled<Counting<R>, R>) -> Lent<R> {
        let id = guard.id;
        assert!(
            !self.factory.book().dead.contains(&id),
            "object {id} was handed out dead"
        );
        self.factory.lend(guard)
    }

    /// Waits until `done` (checked every millisecond); fails if that takes
    /// `STALL`, which only a hang does.
    async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < STALL,
                "waited {STALL:?} for {what}: it hangs; status {:?}, {} created, {} closes",
                self.pool.status(),
                self.factory.created().len(),
                self.factory.total_closes()
            );
            sleep::<R>(Duration::from_millis(1)).await;
        }
    }

    /// Waits until no creation is in flight and every object created is
    /// either idle or closed (the closes run in spawned tasks; a close too
    /// many ends the wait too, and fails the checks at the end).
    async fn settle(&self) {
        self.until("the pool to settle", || {
            let s = self.pool.status();
            s.creating == 0 && self.factory.total_closes() + s.idle >= self.factory.created().len()
        })
        .await;
    }
}

/// Polls `future` at most `polls` times and gives up (dropping it) if it is
/// still pending then.
struct GiveUpAfter<F: Future> {
    future: Pin<Box<F>>,
    polls: u64,
}

impl<F: Future> Future for GiveUpAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        self.polls -= 1;
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        // Come back at once: the next poll is another point to give up at.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// An acquire given up at a random point: after 1 to 4 polls, or after a
/// random time up to 2 ms. `None` if it was given up before it finished.
async fn cancelled_acquire<R: TestRuntime>(
    pool: &TestPool<R>,
    rng: &mut Rng,
) -> Option<Outcome<R>> {
    if rng.chance(500) {
        GiveUpAfter {
            future: Box::pin(pool.acquire()),
            polls: 1 + rng.below(4),
        }
        .await
    } else {
        let deadline = sleep::<R>(Duration::from_micros(rng.below(2_000)));
        match select(pin!(pool.acquire()), pin!(deadline)).await {
            Either::Left((outcome, _)) => Some(outcome),
            Either::Right(_) => None,
        }
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Yields to the runtime once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// How an operation ended.
enum End<R: TestRuntime> {
    Served(wtpool::Pooled<Counting<R>, R>),
    /// Given up (a cancellable operation) before its acquire finished.
    Cancelled,
    /// The one acquire of a cancellable operation failed, not with `Closed`.
    Failed,
    Closed,
}

/// Runs operations until all those below `end` are taken, and does the
/// resize and the close when their turn comes. Gives back its generator, for
/// the next phase.
async fn worker<R: TestRuntime>(run: Arc<Run<R>>, end: usize, mut rng: Rng) -> (Tally, Rng) {
    let pool = &run.pool;
    let factory = &run.factory;
    let mut tally = Tally::default();
    while let Some(n) = run.take_operation(end) {
        if n == SHRINK_AT {
            pool.resize(SHRUNK).expect("a valid size");
        } else if n == GROW_AT {
            pool.resize(GROWN).expect("a valid size");
        } else if n == CLOSE_AT {
            run.closing.store(true, Ordering::SeqCst);
            pool.close().await.expect("no close fails");
            run.closed.store(true, Ordering::SeqCst);
        }
        let after_close = n >= CLOSE_AT;
        if after_close {
            // The operations after the close start once it is done (it is
            // under way in the task that took `CLOSE_AT`).
            while !run.closed.load(Ordering::SeqCst) {
                sleep::<R>(Duration::from_millis(1)).await;
            }
            tally.after_close += 1;
        }
        if run.idle_deaths.load(Ordering::SeqCst) > 0 {
            // An object dies while idle, if one is: under the pool's lock,
            // so that nobody takes it meanwhile; it is found dead at checkout.
            let mut killed = false;
            pool.retain(|object, _| {
                let dead = factory.book().dead.contains(&object.id);
                if !killed && !dead && take_one(&run.idle_deaths) {
                    factory.kill(object.id);
                    killed = true;
                }
                true
            });
            tally.died_idle += u64::from(killed);
        }
        if n % LULL_EVERY < LULL_OPERATIONS {
            sleep::<R>(LULL).await;
        } else if rng.chance(250) {
            sleep::<R>(Duration::from_micros(rng.below(2_000))).await;
        }

        let ended = if rng.chance(CANCEL_PERMILLE) {
            match cancelled_acquire(pool, &mut rng).await {
                None => End::Cancelled,
                Some(Ok(guard)) => End::Served(guard),
                Some(Err(PoolError::Closed)) => End::Closed,
                Some(Err(error)) => {
                    tally.failed_acquire(&error);
                    End::Failed
                }
            }
        } else {
            // Patient: every failure but `Closed` is retried, whatever the
            // timers did, so the operation ends served or closed.
            tally.patient += 1;
            loop {
                match pool.acquire().await {
                    Ok(guard) => break End::Served(guard),
                    Err(PoolError::Closed) => break End::Closed,
                    Err(error) => tally.failed_acquire(&error),
                }
            }
        };
        run.progressed();
        let guard = match ended {
            End::Closed => {
                assert!(
                    run.closing.load(Ordering::SeqCst),
                    "operation {n} failed with `Closed` before the close"
                );
                tally.closed += 1;
                tally.closed_under_way += u64::from(!after_close);
                continue;
            }
            _ if after_close => {
                panic!("operation {n}, started after the close, did not fail with `Closed`")
            }
            End::Cancelled => {
                tally.cancelled += 1;
                continue;
            }
            End::Failed => {
                tally.failed += 1;
                continue;
            }
            End::Served(guard) => guard,
        };
        tally.served += 1;

        // Use it: no one else holds it, and it is not dead.
        let id = guard.id;
        let lent = run.lend(guard);
        for _ in 0..rng.below(4) {
            yield_now().await;
        }
        if rng.chance(30) {
            sleep::<R>(Duration::from_micros(rng.below(500))).await;
        }

        let dies = rng.chance(DIE_PERMILLE);
        let died_in_use_before = tally.died_in_use;
        if dies && rng.chance(700) {
            factory.kill(id);
            tally.died_in_use += 1;
        }
        match rng.below(20) {
            0 => {
                lent.into_inner().discard().await.expect("no close fails");
                tally.discarded += 1;
            }
            1..=4 => {
                pool.release(lent.into_inner())
                    .await
                    .expect("no close fails, no foreign object");
                tally.released += 1;
            }
            _ => drop(lent),
        }
        if dies && tally.died_in_use == died_in_use_before {
            // Not this one: the next idle object an operation finds dies.
            run.idle_deaths.fetch_add(1, Ordering::SeqCst);
        }
    }
    (tally, rng)
}

// ----- the checkpoints -----

/// A waker that only records that it was woken, to poll a future by hand.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    fn new() -> Arc<Self> {
        Arc::new(Flag(AtomicBool::new(false)))
    }

    fn woken(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Polls `future` once with this flag as its waker.
    fn poll<F: Future>(self: &Arc<Self>, future: Pin<&mut F>) -> Poll<F::Output> {
        let waker = Waker::from(self.clone());
        future.poll(&mut Context::from_waker(&waker))
    }
}

/// Acquires `count` objects, each of which the pool has room for, and holds them.
async fn lend_all<R: TestRuntime>(
    run: &Run<R>,
    held: &mut Vec<Lent<R>>,
    tally: &mut Tally,
    count: usize,
) {
    for _ in 0..count {
        let guard = settled_acquire(run)
            .await
            .unwrap_or_else(|error| panic!("a pool with room failed an acquire: {error:?}"));
        held.push(run.lend(guard));
        tally.served += 1;
    }
}

/// Discards the last object held (its slot is freed at once).
async fn discard_one<R: TestRuntime>(held: &mut Vec<Lent<R>>, tally: &mut Tally) {
    held.pop()
        .expect("one is held")
        .into_inner()
        .discard()
        .await
        .expect("no close fails");
    tally.discarded += 1;
}

/// An acquire whose outcome the pool's state decides, not its timers: it is
/// polled once (served at once from the idle list, or queued with a
/// creation started for it), then left alone, so that its wait timeout
/// cannot fire, until no creation is in flight. By then the creation's
/// object or error was handed to it: polled again, it is ready. And it is
/// woken (by the creation's task, just after the hand-off). For a pool with
/// room and no other waiter.
async fn settled_acquire<R: TestRuntime>(run: &Run<R>) -> Outcome<R> {
    let flag = Flag::new();
    let mut acquire = pin!(run.pool.acquire());
    if let Poll::Ready(outcome) = flag.poll(acquire.as_mut()) {
        return outcome;
    }
    run.until("the creation for a waiter", || {
        run.pool.status().creating == 0
    })
    .await;
    let outcome = match flag.poll(acquire.as_mut()) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!(
            "the creation for a waiter finished but the waiter is still queued: {:?}",
            run.pool.status()
        ),
    };
    // The wake follows the hand-off, once the creation's task has let go of
    // the pool's lock.
    run.until("the wake of a waiter served by a creation", || flag.woken())
        .await;
    outcome
}

/// Checks the status's `(size, idle, in_use, creating, waiting)`.
fn expect_status<R: TestRuntime>(
    run: &Run<R>,
    expected: (usize, usize, usize, usize, usize),
    when: &str,
) {
    let s = checked(run.pool.status());
    assert_eq!(
        (s.size, s.idle, s.in_use, s.creating, s.waiting),
        expected,
        "(size, idle, in_use, creating, waiting) {when}: {s:?}"
    );
}

/// Takes the pool, quiet and of `max_size`, through each fault once, one
/// step at a time: each step's outcome follows from the pool's state alone.
/// The factory's random faults are off meanwhile (its creations succeed at
/// once unless a step says otherwise), and back on, from a new seed, after.
async fn checkpoint<R: TestRuntime>(
    run: &Run<R>,
    max_size: usize,
    rng: &mut Rng,
    settings: Settings,
) -> Tally {
    let (pool, factory) = (&run.pool, &run.factory);
    let mut tally = Tally::default();

    // The tasks are done: every object they had is back, no waiter is left.
    let s = checked(pool.status());
    assert_eq!(
        (s.in_use, s.waiting, s.max_size, s.closed),
        (0, 0, max_size, false),
        "(in_use, waiting, max_size, closed) after the tasks stopped: {s:?}"
    );
    run.settle().await;
    let s = checked(pool.status());
    assert!(s.size == s.idle && s.idle <= max_size, "settled: {s:?}");
    factory.inject_faults(rng.next(), 0, Duration::ZERO);
    let failed_before = pool.counters().create_failed;

    // The pool lends exactly `max_size` at once. (Idle objects that died are
    // closed at checkout and replaced.)
    let mut held = Vec::new();
    lend_all(run, &mut held, &mut tally, max_size).await;
    expect_status(run, (max_size, 0, max_size, 0, 0), "all lent");
    run.progressed();

    // Full, with nothing to create and nobody giving back, an acquire can
    // only time out.
    match pool.acquire().await {
        Err(PoolError::Timeout(TimeoutKind::Wait)) => tally.wait_timeouts += 1,
        other => panic!("an acquire on a full pool gave {other:?}"),
    }
    expect_status(run, (max_size, 0, max_size, 0, 0), "after a wait timeout");
    run.progressed();

    // A queued acquire that is dropped leaves the queue, and the object given
    // back next goes idle, not to it.
    {
        let mut acquire = pin!(pool.acquire());
        assert!(Flag::new().poll(acquire.as_mut()).is_pending());
        expect_status(run, (max_size, 0, max_size, 0, 1), "with a waiter");
    }
    tally.cancelled += 1;
    expect_status(run, (max_size, 0, max_size, 0, 0), "after a cancel");
    let back = held.pop().expect("one is held");
    let id = back.id;
    drop(back);
    expect_status(run, (max_size, 1, max_size - 1, 0, 0), "after a give-back");
    match pool.acquire().now_or_never() {
        Some(Ok(guard)) if guard.id == id => held.push(run.lend(guard)),
        other => panic!("an acquire beside idle object {id} gave {other:?}"),
    }
    tally.served += 1;
    run.progressed();

    // An acquire dropped after it was handed an object, before it collected
    // it, passes the object on: to the next waiter, or else to the idle list.
    let flag = Flag::new();
    let mut next = pin!(pool.acquire());
    {
        let mut first = pin!(pool.acquire());
        assert!(Flag::new().poll(first.as_mut()).is_pending());
        assert!(flag.poll(next.as_mut()).is_pending());
        drop(held.pop().expect("one is held"));
        expect_status(run, (max_size, 0, max_size, 0, 1), "after a hand-off");
        // `first` is dropped here, served but not polled since.
    }
    tally.cancelled += 1;
    expect_status(
        run,
        (max_size, 0, max_size, 0, 0),
        "after a served waiter was dropped, with another waiting",
    );
    run.until("the wake of the next waiter", || flag.woken())
        .await;
    match flag.poll(next.as_mut()) {
        Poll::Ready(Ok(guard)) => held.push(run.lend(guard)),
        other => panic!("the waiter after a dropped one gave {other:?}"),
    }
    tally.served += 1;
    {
        let mut alone = pin!(pool.acquire());
        assert!(Flag::new().poll(alone.as_mut()).is_pending());
        drop(held.pop().expect("one is held"));
        expect_status(run, (max_size, 0, max_size, 0, 0), "after a hand-off");
        // `alone` is dropped here, served but not polled since.
    }
    tally.cancelled += 1;
    expect_status(
        run,
        (max_size, 1, max_size - 1, 0, 0),
        "after a served waiter was dropped, alone",
    );
    match pool.acquire().now_or_never() {
        Some(Ok(guard)) => held.push(run.lend(guard)),
        other => panic!("an acquire beside an idle object gave {other:?}"),
    }
    tally.served += 1;
    run.progressed();

    // Two queued acquires are served first come first served, each woken by
    // the object given back for it.
    let (flag_a, flag_b) = (Flag::new(), Flag::new());
    let mut a = pin!(pool.acquire());
    let mut b = pin!(pool.acquire());
    assert!(flag_a.poll(a.as_mut()).is_pending());
    assert!(flag_b.poll(b.as_mut()).is_pending());
    expect_status(run, (max_size, 0, max_size, 0, 2), "with two waiters");
    let waiters = [
        ("first", &flag_a, a.as_mut()),
        ("second", &flag_b, b.as_mut()),
    ];
    for (left, (waiter, flag, future)) in waiters.into_iter().enumerate().map(|(i, w)| (1 - i, w)) {
        let back = held.pop().expect("one is held");
        let id = back.id;
        drop(back);
        expect_status(
            run,
            (max_size, 0, max_size, 0, left),
            &format!("after a hand-off to the {waiter} waiter"),
        );
        run.until(&format!("the wake of the {waiter} waiter"), || flag.woken())
            .await;
        match flag.poll(future) {
            Poll::Ready(Ok(guard)) if guard.id == id => held.push(run.lend(guard)),
            other => panic!("the {waiter} waiter, handed object {id}, gave {other:?}"),
        }
        tally.served += 1;
    }
    run.progressed();

    // An object that dies in use is closed when given back, and its slot is
    // refilled.
    let victim = held.pop().expect("one is held");
    let id = victim.id;
    factory.kill(id);
    drop(victim);
    tally.died_in_use += 1;
    expect_status(
        run,
        (max_size - 1, 0, max_size - 1, 0, 0),
        "after a death in use",
    );
    run.until("the dead object's close", || factory.closes(id) == 1)
        .await;
    let guard = settled_acquire(run).await.expect("a fresh object");
    held.push(run.lend(guard));
    tally.served += 1;
    run.progressed();

    // A creation that fails fails the waiter it was meant for, and frees its
    // slot.
    discard_one(&mut held, &mut tally).await;
    factory.fail_next(1);
    match settled_acquire(run).await {
        Err(PoolError::Create(_)) => tally.create_errors += 1,
        other => panic!("an acquire whose creation failed gave {other:?}"),
    }
    expect_status(
        run,
        (max_size - 1, 0, max_size - 1, 0, 0),
        "after a failed creation",
    );
    held.push(run.lend(settled_acquire(run).await.expect("a fresh object")));
    tally.served += 1;
    run.progressed();

    // So does a creation held (at the factory's gate) past the create
    // timeout, and the creation is cancelled.
    discard_one(&mut held, &mut tally).await;
    let cancelled_before = factory.creates_cancelled();
    factory.hold();
    let outcome = settled_acquire(run).await;
    factory.open();
    match outcome {
        Err(PoolError::Timeout(TimeoutKind::Create)) => tally.create_timeouts += 1,
        other => panic!("an acquire whose creation was held gave {other:?}"),
    }
    run.until("the cancel of the creation held", || {
        factory.creates_cancelled() == cancelled_before + 1
    })
    .await;
    expect_status(
        run,
        (max_size - 1, 0, max_size - 1, 0, 0),
        "after a create timeout",
    );
    held.push(run.lend(settled_acquire(run).await.expect("a fresh object")));
    tally.served += 1;
    run.progressed();

    // An idle object that dies is closed at checkout, never handed out, and
    // replaced: the pool still lends `max_size` at once.
    let victim = held[0].id;
    held.clear();
    expect_status(run, (max_size, max_size, 0, 0, 0), "all given back");
    factory.kill(victim);
    tally.died_idle += 1;
    lend_all(run, &mut held, &mut tally, max_size).await;
    expect_status(run, (max_size, 0, max_size, 0, 0), "all lent again");
    run.until("the dead idle object's close", || {
        factory.closes(victim) == 1
    })
    .await;
    held.clear();
    assert_eq!(
        pool.counters().create_failed,
        failed_before + 2,
        "the creations that failed here are the two this checkpoint failed"
    );
    expect_status(
        run,
        (max_size, max_size, 0, 0, 0),
        "at the end of the checkpoint",
    );
    run.progressed();

    factory.inject_faults(rng.next(), CREATE_FAIL_PERMILLE, settings.max_create_delay);
    tally
}

async fn soak<R: TestRuntime>() {
    let seed = seed();
    println!(
        "soak on {}: seed {seed} (replay: WTPOOL_SOAK_SEED={seed} cargo test --test soak on_{})",
        R::NAME,
        R::NAME
    );
    let mut rng = Rng::new(seed);
    let settings = Settings::draw(&mut rng);
    println!("settings: {settings:?}");

    let factory = Counting::<R>::new();
    factory.inject_faults(rng.next(), CREATE_FAIL_PERMILLE, settings.max_create_delay);
    let pool = TestPool::<R>::builder(factory.clone())
        .max_size(MAX_SIZE)
        .wait_timeout(settings.wait_timeout)
        .create_timeout(settings.create_timeout)
        .build()
        .expect("a valid pool");
    let run = Arc::new(Run {
        pool: pool.clone(),
        factory: factory.clone(),
        next: AtomicUsize::new(0),
        idle_deaths: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        progress: AtomicUsize::new(0),
    });

    let started = Instant::now();
    let mut rngs: Vec<Rng> = (0..TASKS).map(|_| Rng::new(rng.next())).collect();
    let mut chaos = Tally::default();
    let mut checks = Tally::default();
    let phases = async {
        for (end, checkpoint_size) in PHASES {
            let tasks: Vec<_> = rngs
                .drain(..)
                .map(|task_rng| R::spawn_task(worker(run.clone(), end, task_rng)))
                .collect();
            for (tally, task_rng) in join_all(tasks).await {
                chaos += tally;
                rngs.push(task_rng);
            }
            if let Some(max_size) = checkpoint_size {
                checks += checkpoint(&run, max_size, &mut rng, settings).await;
            }
        }
    };

    // Sample the status while the phases run, and watch for progress.
    let mut samples = 0u64;
    let mut peak_lent = 0;
    let sampler = async {
        let mut last = (run.progress.load(Ordering::SeqCst), Instant::now());
        loop {
            checked(pool.status());
            peak_lent = peak_lent.max(factory.book().lent.len());
            samples += 1;
            let progress = run.progress.load(Ordering::SeqCst);
            if progress != last.0 {
                last = (progress, Instant::now());
            }
            assert!(
                last.1.elapsed() < STALL,
                "no operation finished for {STALL:?}: it hangs; status {:?}",
                pool.status()
            );
            sleep::<R>(Duration::from_millis(1)).await;
        }
    };
    match select(pin!(phases), pin!(sampler)).await {
        Either::Left(((), _)) => {}
        Either::Right(_) => unreachable!("the sampler never ends"),
    }
    let ran_for = started.elapsed();

    // Let the creations still in flight at the close finish, and their
    // objects and the ones given back after it be closed.
    run.settle().await;
    let quiet = checked(pool.status());
    let counters = pool.counters();
    println!(
        "{OPERATIONS} operations by {TASKS} tasks in {ran_for:.2?} ({samples} status samples): \
         {chaos:?}; checkpoints: {checks:?}; {counters:?}; \
         {} creations cancelled by the create timeout",
        factory.creates_cancelled()
    );

    // Every operation returned, with one of the outcomes counted.
    assert_eq!(chaos.operations(), OPERATIONS as u64, "{chaos:?}");
    // Every operation after the close failed with `Closed` (the workers check
    // it was not served); before the close, only those under way when it
    // came (one per task at most, the closer's excepted) ended `Closed`: the
    // other patient operations were all served, however many of their
    // acquires timed out.
    assert_eq!(
        chaos.after_close,
        (OPERATIONS - CLOSE_AT) as u64,
        "{chaos:?}"
    );
    assert_eq!(
        chaos.closed,
        chaos.after_close + chaos.closed_under_way,
        "{chaos:?}"
    );
    assert!(
        chaos.closed_under_way < TASKS as u64,
        "more operations under way at the close than tasks: {chaos:?}"
    );
    // The pool is closed and empty: no waiter stranded, nothing in use.
    assert!(quiet.closed, "{quiet:?}");
    assert_eq!(
        (quiet.size, quiet.idle, quiet.in_use, quiet.waiting),
        (0, 0, 0, 0),
        "{quiet:?}"
    );
    assert_eq!(quiet.max_size, GROWN);
    // Every object created was closed exactly once (none is idle after the
    // close), and no object was lent to two borrowers at once.
    {
        let book = factory.book();
        for id in &book.created {
            assert_eq!(
                book.closes.get(id),
                Some(&1),
                "object {id} closed {:?} times",
                book.closes.get(id)
            );
        }
        assert_eq!(
            book.closes.len(),
            book.created.len(),
            "a close of an unknown object"
        );
        assert!(
            book.double_lent.is_empty(),
            "lent twice: {:?}",
            book.double_lent
        );
        assert!(book.lent.is_empty(), "still lent: {:?}", book.lent);
        assert!(book.max_lent <= GROWN, "{} lent at once", book.max_lent);
        assert!(peak_lent <= GROWN);
    }
    // The pool's counters agree with the tasks, the checkpoints and the
    // factory.
    let created = factory.created().len() as u64;
    let calls = factory.create_calls() as u64;
    let served = chaos.served + checks.served;
    assert_eq!(
        counters.checkouts, served,
        "{counters:?} {chaos:?} {checks:?}"
    );
    assert_eq!(counters.created, created, "{counters:?}");
    assert_eq!(counters.create_started, calls, "{counters:?}");
    assert_eq!(counters.create_failed, calls - created, "{counters:?}");
    assert_eq!(counters.closed, created, "{counters:?}");
    assert_eq!((counters.detached, counters.close_failed), (0, 0));
    // Each fault happened: the checkpoints force each, whatever the timers
    // did in the chaos (where how many of each happen depends on the speed
    // of the machine, and is only reported).
    let checkpoints = PHASES.iter().filter(|(_, size)| size.is_some()).count() as u64;
    for (fault, count, each) in [
        ("failed creation", checks.create_errors, 1),
        ("create timeout", checks.create_timeouts, 1),
        ("wait timeout", checks.wait_timeouts, 1),
        ("cancelled acquire", checks.cancelled, 3),
        ("death in use", checks.died_in_use, 1),
        ("death while idle", checks.died_idle, 1),
    ] {
        assert_eq!(
            count,
            each * checkpoints,
            "{fault}s at the checkpoints: {checks:?}"
        );
    }
}

#[test]
fn on_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    runtime.block_on(soak::<Tokio>());
}

#[test]
fn on_smol() {
    smol::block_on(soak::<Smol>());
}
