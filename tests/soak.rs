//! Chaos soak of the async pool, on both runtimes: 100,000 acquires by 64
//! tasks while creations fail 20% of the time and time out, objects die,
//! acquires are cancelled at random points and time out, and the pool is
//! shrunk, grown and closed in the middle of it all.
//!
//! Each run is seeded. The seed is printed (shown with the output of a test
//! that fails); `WTPOOL_SOAK_SEED=<n> cargo test --test soak` replays it: the
//! same pool settings, the same operations in each task and the same fault
//! draws of the factory, in the order the runtime happens to run them (the
//! threads' interleaving is the runtime's, not the seed's). Without the
//! variable the seed comes from the clock.
//!
//! The faults, per operation (one acquire and, if it succeeds, one use):
//!
//! - creation fails with probability 20% (the factory's seeded draws), and
//!   takes a random time up to 1.5 times the create timeout, so about a third
//!   of the creations that do not fail time out (`TimeoutKind::Create`);
//! - 10% of the acquires are cancelled at a random point: after 1 to 4 polls,
//!   or after a random time up to 2 ms (a deadline of the caller's own);
//! - the others have the pool's wait timeout, 2 to 10 ms by the seed, short
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
//!   to 12, at 80% it closes; the acquires after that fail with `Closed`.
//!
//! Checked while it runs: the status adds up at every sample and no object
//! is ever lent to two borrowers at once (the factory's `lend` panics), nor
//! handed out dead. Checked after it: every acquire returned (nothing hangs:
//! the run has a deadline), the outcomes add up to the operations, the pool
//! is empty with no waiter left, every object created was closed exactly once
//! (none is idle: the pool is closed), and the pool's counters agree with the
//! factory's books and the tasks' tallies.

#[path = "support/counting.rs"]
mod counting;
#[path = "support/harness.rs"]
mod harness;

use std::future::Future;
use std::ops::AddAssign;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{Either, join_all, select};
use wtpool::{Pool, PoolError, TimeoutKind};
use wtpool_smol::Smol;
use wtpool_tokio::Tokio;

use counting::{Counting, TestError};
use harness::{TestRuntime, checked};

/// Acquires in all, by all tasks.
const OPERATIONS: usize = 100_000;
/// Tasks acquiring at once.
const TASKS: usize = 64;
/// The pool's size at the start, after the shrink, and after the growth.
const MAX_SIZE: usize = 8;
const SHRUNK: usize = 3;
const GROWN: usize = 12;
/// Creations that fail, in thousandths.
const CREATE_FAIL_PERMILLE: u64 = 200;
/// Acquires cancelled at a random point, in thousandths.
const CANCEL_PERMILLE: u64 = 100;
/// Objects used that die, in thousandths (in use or, 3 in 10, while idle).
const DIE_PERMILLE: u64 = 100;
/// Every `LULL_EVERY` operations, the next `LULL_OPERATIONS` start after a
/// pause of `LULL`, so that objects idle.
const LULL_EVERY: usize = 10_000;
const LULL_OPERATIONS: usize = 256;
const LULL: Duration = Duration::from_millis(3);
/// How long the whole run may take before it is declared hung.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long the checks after the run wait for the pool to settle.
const PATIENCE: Duration = Duration::from_secs(10);

type TestPool<R> = Pool<Counting<R>, R>;

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

/// What the operations of one task (or of all) came to.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    served: u64,
    create_errors: u64,
    wait_timeouts: u64,
    create_timeouts: u64,
    closed: u64,
    aborted: u64,
    cancelled: u64,
    /// Objects killed while their task held them.
    died_in_use: u64,
    /// Idle objects killed in a `retain` pass.
    died_idle: u64,
    released: u64,
    discarded: u64,
}

impl Tally {
    fn operations(&self) -> u64 {
        self.served
            + self.create_errors
            + self.wait_timeouts
            + self.create_timeouts
            + self.closed
            + self.aborted
            + self.cancelled
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.served += o.served;
        self.create_errors += o.create_errors;
        self.wait_timeouts += o.wait_timeouts;
        self.create_timeouts += o.create_timeouts;
        self.closed += o.closed;
        self.aborted += o.aborted;
        self.cancelled += o.cancelled;
        self.died_in_use += o.died_in_use;
        self.died_idle += o.died_idle;
        self.released += o.released;
        self.discarded += o.discarded;
    }
}

type Outcome<R> = Result<wtpool::Pooled<Counting<R>, R>, PoolError<TestError>>;

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

/// Runs operations until all `OPERATIONS` are taken, and does the resize
/// and the close when their turn comes.
async fn worker<R: TestRuntime>(
    pool: TestPool<R>,
    factory: Counting<R>,
    next: Arc<AtomicUsize>,
    idle_deaths: Arc<AtomicUsize>,
    mut rng: Rng,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= OPERATIONS {
            return tally;
        }
        if n == OPERATIONS * 3 / 10 {
            pool.resize(SHRUNK).expect("a valid size");
        } else if n == OPERATIONS / 2 {
            pool.resize(GROWN).expect("a valid size");
        } else if n == OPERATIONS * 4 / 5 {
            pool.close().await.expect("no close fails");
        }
        if idle_deaths.load(Ordering::SeqCst) > 0 {
            // An object dies while idle, if one is: under the pool's lock,
            // so that nobody takes it meanwhile; it is found dead at checkout.
            let mut killed = false;
            pool.retain(|object, _| {
                let dead = factory.book().dead.contains(&object.id);
                if !killed && !dead && take_one(&idle_deaths) {
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

        let outcome = if rng.chance(CANCEL_PERMILLE) {
            cancelled_acquire(&pool, &mut rng).await
        } else {
            Some(pool.acquire().await)
        };
        let guard = match outcome {
            None => {
                tally.cancelled += 1;
                continue;
            }
            Some(Ok(guard)) => guard,
            Some(Err(error)) => {
                match error {
                    PoolError::Create(_) => tally.create_errors += 1,
                    PoolError::Timeout(TimeoutKind::Wait) => tally.wait_timeouts += 1,
                    PoolError::Timeout(TimeoutKind::Create) => tally.create_timeouts += 1,
                    PoolError::Closed => tally.closed += 1,
                    PoolError::CreateAborted => tally.aborted += 1,
                    other => panic!("an acquire failed with {other:?}"),
                }
                continue;
            }
        };
        tally.served += 1;

        // Use it: no one else holds it, and it is not dead.
        let id = guard.id;
        assert!(
            !factory.book().dead.contains(&id),
            "object {id} was handed out dead"
        );
        let lent = factory.lend(guard);
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
            idle_deaths.fetch_add(1, Ordering::SeqCst);
        }
    }
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

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let idle_deaths = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            R::spawn_task(worker(
                pool.clone(),
                factory.clone(),
                next.clone(),
                idle_deaths.clone(),
                Rng::new(rng.next()),
            ))
        })
        .collect();

    // Sample the status while the tasks run.
    let mut samples = 0u64;
    let mut peak_lent = 0;
    let sampler = async {
        loop {
            checked(pool.status());
            peak_lent = peak_lent.max(factory.book().lent.len());
            samples += 1;
            sleep::<R>(Duration::from_millis(1)).await;
        }
    };
    let run = async {
        match select(pin!(join_all(tasks)), pin!(sampler)).await {
            Either::Left((tallies, _)) => tallies,
            Either::Right(_) => unreachable!("the sampler never ends"),
        }
    };
    let tallies = match select(pin!(run), pin!(sleep::<R>(DEADLINE))).await {
        Either::Left((tallies, _)) => tallies,
        Either::Right(_) => panic!(
            "the soak still runs after {DEADLINE:?}: it hangs; status {:?}",
            pool.status()
        ),
    };
    let ran_for = started.elapsed();
    let mut tally = Tally::default();
    for t in tallies {
        tally += t;
    }

    // Let the creations still in flight at the close finish, and their
    // objects and the ones given back after it be closed.
    let settle = Instant::now();
    let quiet = loop {
        let s = checked(pool.status());
        if s.creating == 0 && factory.total_closes() == factory.created().len() {
            break s;
        }
        assert!(
            settle.elapsed() < PATIENCE,
            "the pool does not settle: {s:?}, {} created, {} closes",
            factory.created().len(),
            factory.total_closes()
        );
        sleep::<R>(Duration::from_millis(1)).await;
    };
    let counters = pool.counters();
    println!(
        "{OPERATIONS} operations by {TASKS} tasks in {ran_for:.2?} ({samples} status samples): \
         {tally:?}; {counters:?}; {} creations cancelled by the create timeout",
        factory.creates_cancelled()
    );

    // Every acquire returned, with one of the outcomes counted.
    assert_eq!(tally.operations(), OPERATIONS as u64, "{tally:?}");
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
    // The pool's counters agree with the tasks and with the factory.
    let created = factory.created().len() as u64;
    let calls = factory.create_calls() as u64;
    assert_eq!(counters.checkouts, tally.served, "{counters:?} {tally:?}");
    assert_eq!(counters.created, created, "{counters:?}");
    assert_eq!(counters.create_started, calls, "{counters:?}");
    assert_eq!(counters.create_failed, calls - created, "{counters:?}");
    assert_eq!(counters.closed, created, "{counters:?}");
    assert_eq!((counters.detached, counters.close_failed), (0, 0));
    // Each fault happened: this run tested what it claims to.
    assert!(tally.create_errors > 0, "no creation failed: {tally:?}");
    assert!(tally.create_timeouts > 0, "no create timeout: {tally:?}");
    assert!(tally.wait_timeouts > 0, "no wait timeout: {tally:?}");
    assert!(tally.cancelled > 0, "no acquire was cancelled: {tally:?}");
    assert!(tally.died_in_use > 0 && tally.died_idle > 0, "{tally:?}");
    assert!(tally.closed > 0, "no acquire after the close: {tally:?}");
    assert!(
        tally.served > OPERATIONS as u64 / 4,
        "few were served: {tally:?}"
    );
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
