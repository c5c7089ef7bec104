//! A test [`Factory`] that keeps its own books, independent of the pool's:
//! which objects it created, which are lent out right now (lending one object
//! to two borrowers at once panics), how often each was closed, which are
//! "dead". Creation can be made to fail, to panic, to take a while, or to wait
//! at a gate that the test opens; closing can be made to fail. With
//! [`Counting::inject_faults`], creations fail at random and take a random
//! time, drawn from a seeded generator (for the soak test).
//!
//! The factory is `Clone`: every clone shares the same books, so a test keeps
//! one clone as its control handle and gives another to the pool.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use wtpool::{Factory, Pooled, Runtime};

use crate::harness::{lock, take_one};

/// The factory's error, for both create and close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError(pub &'static str);

/// What a refused creation fails with (see `Counting::refuse_all`).
pub const REFUSED: TestError = TestError("refused");

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TestError {}

/// The pooled object: just the factory's own id, in order of creation.
#[derive(Debug, PartialEq, Eq)]
pub struct Obj {
    pub id: u64,
}

/// The factory's books.
#[derive(Debug, Default)]
pub struct Book {
    /// Ids of the objects created, in order.
    pub created: Vec<u64>,
    /// How many times each object was closed.
    pub closes: BTreeMap<u64, usize>,
    /// Objects that `is_alive` reports dead.
    pub dead: HashSet<u64>,
    /// Objects lent out right now (through [`Counting::lend`]).
    pub lent: HashSet<u64>,
    /// The most objects lent out at once.
    pub max_lent: usize,
    /// Objects that were lent to a second borrower while lent out.
    pub double_lent: Vec<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    book: Mutex<Book>,
    create_calls: AtomicUsize,
    creates_running: AtomicUsize,
    creates_cancelled: AtomicUsize,
    fail_all: AtomicBool,
    /// Every creation fails with the error `is_refusal` calls a refusal.
    refuse_all: AtomicBool,
    fail_next: AtomicUsize,
    panic_next: AtomicUsize,
    close_fails: AtomicBool,
    delay: Mutex<Duration>,
    /// While `Some`, each creation waits for a permit of this semaphore.
    gate: Mutex<Option<Arc<Semaphore>>>,
    /// Random creation failures and delays, when set.
    faults: Mutex<Option<Faults>>,
}

/// Random faults of creation: each creation fails with probability
/// `fail_permille / 1000` and first takes a time drawn evenly from
/// `0..=max_delay`, both drawn from a seeded generator.
#[derive(Debug)]
struct Faults {
    rng: fastrand::Rng,
    fail_permille: u64,
    max_delay: Duration,
}

impl Faults {
    /// (fail, delay) for one creation.
    fn draw(&mut self) -> (bool, Duration) {
        let fail = self.rng.u64(0..1000) < self.fail_permille;
        let micros = self.max_delay.as_micros() as u64;
        let delay = Duration::from_micros(self.rng.u64(0..=micros));
        (fail, delay)
    }
}

/// The test factory, on runtime `R` (for its create delay).
pub struct Counting<R> {
    shared: Arc<Shared>,
    runtime: R,
}

impl<R: Clone> Clone for Counting<R> {
    fn clone(&self) -> Self {
        Counting {
            shared: self.shared.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<R: Runtime + Default> Default for Counting<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime + Default> Counting<R> {
    pub fn new() -> Self {
        Counting {
            shared: Arc::default(),
            runtime: R::default(),
        }
    }
}

impl<R: Runtime> Counting<R> {
    /// A look at the books.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.shared.book)
    }

    /// How many clones of this factory exist (the pool holds one while it lives).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.shared)
    }

    /// How many times `create` was called.
    pub fn create_calls(&self) -> usize {
        self.shared.create_calls.load(Ordering::SeqCst)
    }

    /// Creations running right now (inside `create`).
    pub fn creates_running(&self) -> usize {
        self.shared.creates_running.load(Ordering::SeqCst)
    }

    /// Creations whose future was dropped before it finished.
    pub fn creates_cancelled(&self) -> usize {
        self.shared.creates_cancelled.load(Ordering::SeqCst)
    }

    /// Ids created, in order.
    pub fn created(&self) -> Vec<u64> {
        self.book().created.clone()
    }

    /// How many times object `id` was closed.
    pub fn closes(&self, id: u64) -> usize {
        self.book().closes.get(&id).copied().unwrap_or(0)
    }

    /// How many closes in all.
    pub fn total_closes(&self) -> usize {
        self.book().closes.values().sum()
    }

    /// Every creation fails while this is on.
    pub fn fail_creates(&self, on: bool) {
        self.shared.fail_all.store(on, Ordering::SeqCst);
    }

    /// The next `n` creations fail.
    /// Every creation from now on is refused (`REFUSED`), or none.
    pub fn refuse_all(&self, refuse: bool) {
        self.shared.refuse_all.store(refuse, Ordering::SeqCst);
    }

    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` creations panic.
    pub fn panic_next(&self, n: usize) {
        self.shared.panic_next.store(n, Ordering::SeqCst);
    }

    /// Every close fails (after counting the close) while this is on.
    pub fn fail_closes(&self, on: bool) {
        self.shared.close_fails.store(on, Ordering::SeqCst);
    }

    /// Each creation takes this long.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// From now on each creation waits at a gate until [`allow`](Self::allow)
    /// lets it through (or [`open`](Self::open) opens the gate).
    pub fn hold(&self) {
        *lock(&self.shared.gate) = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets `n` held creations through.
    pub fn allow(&self, n: usize) {
        if let Some(gate) = &*lock(&self.shared.gate) {
            gate.add_permits(n);
        }
    }

    /// Opens the gate: held creations go on, and new ones no longer wait.
    pub fn open(&self) {
        if let Some(gate) = lock(&self.shared.gate).take() {
            gate.close();
        }
    }

    /// From now on each creation fails with probability `fail_permille /
    /// 1000` and first takes a random time up to `max_delay`, drawn from a
    /// generator seeded with `seed` (the draws come in the order the
    /// creations start).
    pub fn inject_faults(&self, seed: u64, fail_permille: u64, max_delay: Duration) {
        *lock(&self.shared.faults) = Some(Faults {
            rng: fastrand::Rng::with_seed(seed),
            fail_permille,
            max_delay,
        });
    }

    /// Marks object `id` dead: `is_alive` says false from now on.
    pub fn kill(&self, id: u64) {
        self.book().dead.insert(id);
    }

    /// Records `guard` as lent out; panics if its object already is.
    pub fn lend(&self, guard: Pooled<Self, R>) -> Lent<R> {
        let id = guard.id;
        {
            let mut book = self.book();
            if !book.lent.insert(id) {
                book.double_lent.push(id);
                drop(book);
                panic!("object {id} lent to two borrowers at once");
            }
            book.max_lent = book.max_lent.max(book.lent.len());
        }
        Lent {
            id,
            shared: self.shared.clone(),
            guard: Some(guard),
        }
    }
}

/// Counts a creation as running while it lives; one dropped before it
/// finished counts as cancelled.
struct Running<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.shared.creates_running.fetch_sub(1, Ordering::SeqCst);
        if !self.done {
            self.shared.creates_cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl<R: Runtime> Factory for Counting<R> {
    type Object = Obj;
    type Error = TestError;

    async fn create(&self) -> Result<Obj, TestError> {
        let shared = &*self.shared;
        shared.create_calls.fetch_add(1, Ordering::SeqCst);
        shared.creates_running.fetch_add(1, Ordering::SeqCst);
        let mut running = Running {
            shared,
            done: false,
        };
        let (injected_failure, injected_delay) = lock(&shared.faults)
            .as_mut()
            .map_or((false, Duration::ZERO), Faults::draw);
        let delay = *lock(&shared.delay) + injected_delay;
        if !delay.is_zero() {
            self.runtime.sleep(delay).await;
        }
        let gate = lock(&shared.gate).clone();
        if let Some(gate) = gate {
            // A closed gate lets everyone through.
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
        running.done = true;
        if take_one(&shared.panic_next) {
            panic!("the test factory panics in create, as asked");
        }
        if shared.refuse_all.load(Ordering::SeqCst) {
            return Err(REFUSED);
        }
        if injected_failure || shared.fail_all.load(Ordering::SeqCst) || take_one(&shared.fail_next)
        {
            return Err(TestError("create failed"));
        }
        let mut book = lock(&shared.book);
        let id = book.created.len() as u64;
        book.created.push(id);
        Ok(Obj { id })
    }

    fn is_alive(&self, object: &mut Obj) -> bool {
        !lock(&self.shared.book).dead.contains(&object.id)
    }

    fn is_refusal(&self, error: &TestError) -> bool {
        *error == REFUSED
    }

    async fn close(&self, object: Obj) -> Result<(), TestError> {
        *lock(&self.shared.book).closes.entry(object.id).or_default() += 1;
        if self.shared.close_fails.load(Ordering::SeqCst) {
            Err(TestError("close failed"))
        } else {
            Ok(())
        }
    }
}

/// A guard recorded as lent out by [`Counting::lend`]; the record goes away
/// just before the object goes back to the pool.
pub struct Lent<R: Runtime> {
    id: u64,
    shared: Arc<Shared>,
    guard: Option<Pooled<Counting<R>, R>>,
}

impl<R: Runtime> Lent<R> {
    /// Ends the loan and hands back the guard itself.
    pub fn into_inner(mut self) -> Pooled<Counting<R>, R> {
        lock(&self.shared.book).lent.remove(&self.id);
        self.guard.take().expect("a live loan holds its guard")
    }
}

impl<R: Runtime> Deref for Lent<R> {
    type Target = Pooled<Counting<R>, R>;

    fn deref(&self) -> &Self::Target {
        self.guard.as_ref().expect("a live loan holds its guard")
    }
}

impl<R: Runtime> DerefMut for Lent<R> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.guard.as_mut().expect("a live loan holds its guard")
    }
}

impl<R: Runtime> Drop for Lent<R> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            lock(&self.shared.book).lent.remove(&self.id);
            drop(guard);
        }
    }
}
