//! The async pool: a thin driver over the [`PoolState`] machine.
//!
//! Every call takes the lock, feeds one input to the machine, drains the
//! machine's actions (delivering each served waiter's outcome into its
//! [`Slot`], so that the waiter takes it without the lock) and lets go of
//! the lock before carrying them out: wakes, spawned creations and spawned
//! closes. The lock is a `std::sync::Mutex`,
//! held for a few hundred nanoseconds at most and never across an await, which
//! is cheaper than an async lock and cannot deadlock with the executor.
//!
//! Every time it reads comes from the pool's [`Runtime::now`], the clock its
//! timers count on, and every task it spawns goes to that runtime. Every call
//! into the [`Factory`] is guarded: a panic in `create` fails the creation, in
//! `is_alive` says "dead", in `close` counts as a failed close, so that no
//! slot is ever lost to a panic.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures::FutureExt;
use futures::future::{Either, join_all, select};

use crate::builder::Timing;
use crate::error::{CloseErrors, ConfigError, PoolError, TimeoutKind};
use crate::machine::{
    Acquire, Action, Checkout, Counters, CreateTicket, Failure, ObjectMeta, PoolState, Status,
    WaitPoll, WaiterId,
};
use crate::observe::{CreateOutcome, Observer, Stopwatch};
#[cfg(not(loom))]
use crate::sync::Weak;
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::{Builder, Factory, Pooled, Runtime};

/// Why a creation failed, as the driver tells the machine.
#[derive(Debug)]
pub(crate) enum CreateFailure<E> {
    Error(E),
    TimedOut,
    Aborted,
    Panicked,
}

/// Why closing an object failed: the factory's error, or its panic (caught,
/// for the caller to resume or drop).
enum CloseFailure<E> {
    Error(E),
    Panicked(Box<dyn Any + Send>),
}

pub(crate) type State<F> =
    PoolState<<F as Factory>::Object, CreateFailure<<F as Factory>::Error>, Arc<Slot<F>>>;
/// The machine's actions once drained: a served waiter's outcome is in its
/// slot, and only its waker is left to wake.
type Actions<F> = Drained<<F as Factory>::Object>;
/// What the machine serves a waiter.
type Served<F> =
    Result<Checkout<<F as Factory>::Object>, Failure<CreateFailure<<F as Factory>::Error>>>;

/// The actions of one input, in order. Most inputs have none, or one wake
/// (a hand-off): a first wake is kept apart, so that draining them
/// allocates nothing and moves little.
pub(crate) struct Drained<T> {
    wake: Option<Waker>,
    rest: Vec<Action<T, Waker>>,
}

/// A pool of `F`'s objects, driven on the runtime `R`.
///
/// Cheap to clone (an `Arc`); every clone is the same pool. It is `Send` and
/// `Sync`, and so is the [`Pooled`] guard that [`acquire`](Pool::acquire) gives.
///
/// ```
/// # use wtpool::{Factory, Pool, Runtime};
/// # async fn demo<F: Factory, R: Runtime + Default>(factory: F) -> Result<(), Box<dyn std::error::Error>> {
/// let pool: Pool<F, R> = Pool::builder(factory)
///     .max_size(8)
///     .wait_timeout(std::time::Duration::from_secs(5))
///     .build()?;
/// {
///     let object = pool.acquire().await?; // derefs to F::Object
///     // ... use it; dropping it gives it back ...
/// }
/// pool.close().await?;
/// # Ok(()) }
/// ```
pub struct Pool<F: Factory, R: Runtime> {
    inner: Arc<Inner<F, R>>,
}

pub(crate) struct Inner<F: Factory, R: Runtime> {
    locked: Mutex<Locked<F>>,
    factory: F,
    runtime: R,
    timing: Timing,
    /// Whether the upkeep task runs (with `min_idle` or a time option).
    upkeep: bool,
    /// Wakes the upkeep task when the machine's next deadline comes earlier
    /// than the one it sleeps until.
    upkeep_wake: Event,
    /// Whether `acquire` needs the time (only with `max_lifetime`).
    clock_on_acquire: bool,
    /// Whether a release needs the exact time (with `idle_timeout` or
    /// `max_lifetime`); without, it stamps `last_used` from `coarse_clock`.
    clock_on_release: bool,
    /// The time of the latest creation's end, in nanoseconds since `epoch`
    /// (never less than any object's `created_at`): the coarse clock a
    /// release reads when it needs no exact time (see `release_time`).
    coarse_clock: AtomicU64,
    /// Passed to the machine's `acquire` as the time when it is not needed:
    /// when the pool was built, on the runtime's clock.
    epoch: Instant,
    /// The pool's name, and its spans, events and metrics (src/observe.rs).
    observer: Observer,
}

/// What the lock guards.
struct Locked<F: Factory> {
    machine: State<F>,
    /// When the upkeep task will next wake; `None` while it is awake.
    upkeep_at: Option<Instant>,
}

impl<F: Factory> Locked<F> {
    /// The machine's pending actions, with each served waiter's outcome
    /// delivered into its slot (see [`Slot`]).
    fn drain(&mut self) -> Actions<F> {
        let mut drained = Drained {
            wake: None,
            rest: Vec::new(),
        };
        while let Some(action) = self.next_action() {
            match action {
                Action::Wake(waker) if drained.wake.is_none() && drained.rest.is_empty() => {
                    drained.wake = Some(waker)
                }
                action => drained.rest.push(action),
            }
        }
        drained
    }

    /// The next action; a waiter served is delivered its outcome here, and a
    /// waiter that is leaving is skipped (it collects from the machine).
    fn next_action(&mut self) -> Option<Action<F::Object, Waker>> {
        loop {
            match self.machine.poll_action()? {
                Action::Wake(slot) => {
                    if let Some(waker) = slot.deliver(&mut self.machine) {
                        return Some(Action::Wake(waker));
                    }
                }
                Action::Create(ticket) => return Some(Action::Create(ticket)),
                Action::Close {
                    object,
                    meta,
                    reason,
                } => {
                    return Some(Action::Close {
                        object,
                        meta,
                        reason,
                    });
                }
            }
        }
    }
}

/// A queued acquire's mailbox, shared by the waiter and the pool.
///
/// The input that serves the waiter (a release, a creation, the close)
/// also collects its outcome from the machine for it, under the pool's
/// lock, and leaves it here; the woken waiter takes it under this slot's
/// lock alone. A hand-off thus takes the pool's lock twice (the acquire that
/// queues, the release that serves), not three times.
///
/// Who ends the wait is decided under this lock: the pool delivers only
/// while the waiter's token is here ([`SlotState::Waiting`]); a waiter that
/// leaves (dropped, timed out) takes its token out first, and then
/// collects or cancels in the machine itself. Lock order: the pool's lock,
/// then a slot's; never the other way.
pub(crate) struct Slot<F: Factory> {
    state: Mutex<SlotState<F>>,
}

enum SlotState<F: Factory> {
    /// Queued: the waiter's token and the waker to wake it with.
    Waiting { waiter: WaiterId, waker: Waker },
    /// Served and delivered: the outcome, for the waiter to take.
    Served(Served<F>),
    /// Before the token is in (the acquire that queues puts it in under the
    /// pool's lock, before any input can serve it), and once the waiter has
    /// taken its token or its outcome out.
    Empty,
}

impl<F: Factory> Slot<F> {
    fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Empty),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<F>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The waiter's state, taken out (the slot is left empty).
    fn take(&self) -> SlotState<F> {
        std::mem::replace(&mut *self.lock(), SlotState::Empty)
    }

    /// Under the pool's lock, once the machine has served this waiter:
    /// collects its outcome and leaves it here. Returns the waker to wake,
    /// or `None` if the waiter is leaving (it took its token: its cancel
    /// collects the outcome from the machine, and gives an object back).
    fn deliver(&self, machine: &mut State<F>) -> Option<Waker> {
        let mut state = self.lock();
        let SlotState::Waiting { waiter, waker } = std::mem::replace(&mut *state, SlotState::Empty)
        else {
            return None;
        };
        match machine.poll_waiter(waiter, |_| ()) {
            Ok(WaitPoll::Ready(served)) => *state = SlotState::Served(served),
            Ok(WaitPoll::Pending(_)) | Err(_) => {
                unreachable!("a woken waiter of this pool is served")
            }
        }
        Some(waker)
    }
}

impl<F: Factory, R: Runtime> Clone for Pool<F, R> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<F: Factory, R: Runtime> std::fmt::Debug for Pool<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<F: Factory, R: Runtime + Default> Pool<F, R> {
    /// A builder with the runtime's default handle.
    pub fn builder(factory: F) -> Builder<F, R> {
        Builder::new(factory, R::default())
    }

    /// A pool of at most `max_size` objects with every other option off.
    pub fn new(factory: F, max_size: usize) -> Result<Self, ConfigError> {
        Self::builder(factory).max_size(max_size).build()
    }
}

impl<F: Factory, R: Runtime> Pool<F, R> {
    pub(crate) fn from_parts(
        factory: F,
        runtime: R,
        machine: State<F>,
        timing: Timing,
        name: std::sync::Arc<str>,
    ) -> Result<Self, ConfigError> {
        let limits = machine.limits();
        let upkeep_tick = [
            limits.idle_timeout,
            limits.max_lifetime,
            timing.idle_check_interval,
            Some(Duration::from_secs(1)),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("one is always there");
        let upkeep = limits.min_idle > 0
            || limits.idle_timeout.is_some()
            || limits.max_lifetime.is_some()
            || timing.idle_check_interval.is_some();
        let clock_on_acquire = limits.max_lifetime.is_some();
        let clock_on_release = limits.idle_timeout.is_some() || limits.max_lifetime.is_some();
        if !runtime.can_run_tasks() {
            return Err(ConfigError::NoRuntime);
        }
        let epoch = runtime.now();
        let inner = Arc::new(Inner {
            locked: Mutex::new(Locked {
                machine,
                upkeep_at: None,
            }),
            factory,
            runtime,
            timing,
            upkeep,
            upkeep_wake: Event::new(),
            clock_on_acquire,
            clock_on_release,
            coarse_clock: AtomicU64::new(0),
            epoch,
            observer: Observer::new(name),
        });
        // The creations that fill `min_idle`, if any.
        inner.with_state(|_| ());
        if upkeep {
            // loom's `Arc` has no `Weak` for the upkeep task to hold the pool
            // by: the loom build models pools without upkeep (src/sync.rs).
            #[cfg(loom)]
            unimplemented!(
                "the loom build has no upkeep task (it would tick every {upkeep_tick:?}): \
                 leave min_idle, idle_timeout, max_lifetime and idle_check_interval unset"
            );
            #[cfg(not(loom))]
            inner.runtime.spawn(upkeep_loop(
                Arc::downgrade(&inner),
                inner.runtime.clone(),
                upkeep_tick,
                timing.idle_check_interval,
            ));
        }
        Ok(Pool { inner })
    }

    /// Takes an object: an idle one if there is one alive, else a new one if
    /// there is room, else the next one given back, first come first served.
    ///
    /// Dropping the returned future at any point loses nothing: a place in the
    /// queue is withdrawn, and an object handed over meanwhile goes to the next
    /// waiter. A creation started for the caller goes on in its own task.
    pub fn acquire(&self) -> impl Future<Output = Result<Pooled<F, R>, PoolError<F::Error>>> {
        // With the features off, the caller awaits `checkout` itself: no
        // layer of its own.
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        return (self.inner.observer).acquire(&self.inner.runtime, self.checkout());
        #[cfg(not(any(feature = "tracing", feature = "metrics")))]
        self.checkout()
    }

    /// [`acquire`](Self::acquire), unobserved.
    async fn checkout(&self) -> Result<Pooled<F, R>, PoolError<F::Error>> {
        let inner = &self.inner;
        // The machine reads `now` at checkout only for `max_lifetime`.
        let now = if inner.clock_on_acquire {
            inner.runtime.now()
        } else {
            inner.epoch
        };
        let mut now = now;
        let slot = loop {
            // Queued, the caller's waker is registered in the same input, so
            // that the wait's first poll need not take the lock again to
            // register it.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(inner.with_state(|state| {
                    // The waker is cloned before the waiter is queued: a
                    // clone that panics then leaves nothing queued.
                    let mut made = None;
                    let answer = state.acquire(
                        now,
                        |object| inner.is_alive(object),
                        || made.insert((Slot::new(), cx.waker().clone())).0.clone(),
                    );
                    if let Acquire::Queued(waiter) = answer {
                        let (slot, waker) = made.expect("queued with the slot made for it");
                        *slot.lock() = SlotState::Waiting { waiter, waker };
                        return Err(slot);
                    }
                    Ok(answer)
                }))
            })
            .await;
            match first {
                Ok(Acquire::Ready(checkout)) => return Ok(Pooled::new(self.clone(), checkout)),
                Ok(Acquire::Closed) => return Err(PoolError::Closed),
                Err(slot) => break slot,
                Ok(Acquire::Queued(_)) => unreachable!("answered with its slot"),
                Ok(Acquire::Refused { until }) => {
                    // `now` may be the epoch (see above): read the clock.
                    let clock = inner.runtime.now();
                    if clock < until || now >= until {
                        return Err(refused(until, clock));
                    }
                    // The back-off is over: ask again with the time.
                    now = clock;
                }
            }
        };
        let mut wait = Wait {
            inner,
            slot: Some(slot),
            registered: true,
        };
        let served = match timeout(&inner.runtime, inner.timing.wait_timeout, &mut wait).await {
            Some(served) => served,
            None => wait.give_up(),
        };
        served.map(|checkout| Pooled::new(self.clone(), checkout))
    }

    /// The same as [`acquire`](Self::acquire), under the name deadpool and bb8 use.
    pub fn get(&self) -> impl Future<Output = Result<Pooled<F, R>, PoolError<F::Error>>> {
        self.acquire()
    }

    /// Gives an object back now, rather than when the guard drops, and reports
    /// what a guard's drop cannot: a dead object is closed here and the
    /// factory's close error returned; an object from another pool is refused
    /// with [`PoolError::ForeignObject`] (and goes back to its own pool).
    ///
    /// The object is back in the pool when this returns; the future only
    /// closes a dead one, and if it is dropped before it runs, that object
    /// is closed in a task of the pool's instead.
    pub fn release(
        &self,
        object: Pooled<F, R>,
    ) -> impl Future<Output = Result<(), PoolError<F::Error>>> + Send + 'static {
        let inner = self.inner.clone();
        let closing = if Arc::ptr_eq(&self.inner, &object.pool().inner) {
            let mut checkout = object.into_checkout();
            let alive = inner.is_alive(checkout.object_mut());
            let object = inner.give_back(checkout, alive, true);
            Ok(close_awaited(inner, object))
        } else {
            drop(object);
            Err(PoolError::ForeignObject)
        };
        async move { closing?.await }
    }

    /// Closes the pool: every waiter fails at once with [`PoolError::Closed`],
    /// the idle objects are closed (their close errors returned, not
    /// swallowed), objects in use are closed when given back, and creations in
    /// flight are closed when they finish. Closing again does nothing.
    ///
    /// If the factory's `close` panics for an idle object, the other idle
    /// objects are still closed, every failure is counted, and then the
    /// first panic is resumed here.
    pub async fn close(&self) -> Result<(), CloseErrors<F::Error>> {
        let (was_closed, actions) = self.inner.with_state_deferred(|state| {
            let was_closed = state.is_closed();
            state.close();
            was_closed
        });
        if !was_closed {
            self.inner.observer.pool_closed();
        }
        let idle = self.inner.perform(actions, |_| true);
        let results = join_all(
            idle.into_iter()
                .map(|object| self.inner.close_counted(object)),
        )
        .await;
        let mut errors = Vec::new();
        let mut panic = None;
        for failure in results.into_iter().filter_map(Result::err) {
            match failure {
                CloseFailure::Error(error) => errors.push(error),
                CloseFailure::Panicked(payload) => {
                    panic.get_or_insert(payload);
                }
            }
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CloseErrors { errors })
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().machine.is_closed()
    }

    /// Changes `max_size`. Shrinking closes idle objects at once and objects in
    /// use as they come back, until the pool fits.
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        self.inner.with_state(|state| state.resize(max_size))
    }

    /// Closes every idle object for which `keep` says false; returns how many.
    /// `keep` runs under the pool's lock: it must not call into the pool.
    pub fn retain(&self, keep: impl FnMut(&F::Object, &ObjectMeta) -> bool) -> usize {
        self.inner.with_state(|state| state.retain(keep))
    }

    /// A snapshot of the occupancy.
    pub fn status(&self) -> Status {
        self.inner.lock().machine.status()
    }

    /// Running totals: creations, checkouts, reuse, closes.
    pub fn counters(&self) -> Counters {
        self.inner.lock().machine.counters()
    }

    /// The name it was built with ([`Builder::name`]).
    pub fn name(&self) -> &str {
        self.inner.observer.name()
    }

    /// The factory.
    pub fn factory(&self) -> &F {
        &self.inner.factory
    }

    /// The runtime the pool runs on: its creations, closes and upkeep are
    /// spawned there, and its time is read from there. Spawn a companion task
    /// of the pool on it, rather than on whichever runtime is current.
    pub fn runtime(&self) -> &R {
        &self.inner.runtime
    }

    pub(crate) fn inner(&self) -> &Arc<Inner<F, R>> {
        &self.inner
    }
}

impl<F: Factory, R: Runtime> Inner<F, R> {
    fn lock(&self) -> MutexGuard<'_, Locked<F>> {
        // The machine is left consistent between inputs, so a panic elsewhere
        // while the lock was held does not make the state unusable.
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one input to the machine and returns what it answered, with its
    /// actions drained but not yet carried out. Wakes the upkeep task if the
    /// machine's next deadline came earlier than the one it sleeps until.
    fn with_state_deferred<T>(&self, input: impl FnOnce(&mut State<F>) -> T) -> (T, Actions<F>) {
        let mut locked = self.lock();
        let answer = input(&mut locked.machine);
        let actions = locked.drain();
        if self.upkeep {
            let next = locked.machine.poll_timeout();
            if next.is_some_and(|next| locked.upkeep_at.is_some_and(|at| next < at)) {
                locked.upkeep_at = None;
                self.upkeep_wake.notify(1);
            }
        }
        (answer, actions)
    }

    /// Closes an object that left the pool for a caller who awaits it: a
    /// failure is counted and returned, a panic of the factory's `close` is
    /// counted and resumed in the caller.
    pub(crate) async fn close_now(
        &self,
        object: Option<F::Object>,
    ) -> Result<(), PoolError<F::Error>> {
        let Some(object) = object else { return Ok(()) };
        match self.close_counted(object).await {
            Ok(()) => Ok(()),
            Err(CloseFailure::Error(error)) => Err(PoolError::Close(error)),
            Err(CloseFailure::Panicked(payload)) => resume_unwind(payload),
        }
    }

    /// Closes an object that left the pool, catching a panic of the
    /// factory's `close`; a failure or a panic is counted as a failed close.
    async fn close_counted(&self, object: F::Object) -> Result<(), CloseFailure<F::Error>> {
        let closed = AssertUnwindSafe(async { self.factory.close(object).await })
            .catch_unwind()
            .await;
        let failure = match closed {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => {
                self.observer.close_failed(Some(&error));
                CloseFailure::Error(error)
            }
            Err(payload) => {
                self.observer.close_failed::<F::Error>(None);
                CloseFailure::Panicked(payload)
            }
        };
        self.lock().machine.handle_close_failed();
        Err(failure)
    }

    /// The time a release gives the machine: the clock's when `idle_timeout`
    /// or `max_lifetime` needs it; otherwise the coarse clock (the latest
    /// creation's end), sparing a clock read per release. The machine then
    /// uses it for `last_used` alone, which stays in order and no earlier
    /// than the object's creation.
    fn release_time(&self) -> Instant {
        if self.clock_on_release {
            return self.runtime.now();
        }
        let since_epoch = Duration::from_nanos(self.coarse_clock.load(Ordering::Relaxed));
        self.epoch.checked_add(since_epoch).unwrap_or(self.epoch)
    }

    /// Moves the coarse clock (see `release_time`) up to `now`.
    fn advance_coarse_clock(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.coarse_clock.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Whether the factory calls `error` a refusal; a check that panics says no.
    fn is_refusal(&self, error: &F::Error) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.factory.is_refusal(error))).unwrap_or(false)
    }

    /// The factory's verdict on an object; a check that panics says "dead",
    /// so that the object is closed and its slot freed rather than lost.
    pub(crate) fn is_alive(&self, object: &mut F::Object) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.factory.is_alive(object))).unwrap_or(false)
    }
}

/// The driver's steps that hand clones of the pool's `Arc` to the tasks they
/// spawn. They are a trait on the `Arc` rather than methods taking
/// `self: &Arc<Self>` because loom's `Arc` (see src/sync.rs) cannot be a
/// method receiver.
pub(crate) trait Driver<F: Factory> {
    /// Feeds one input to the machine and carries out its actions.
    fn with_state<T>(&self, input: impl FnOnce(&mut State<F>) -> T) -> T;

    /// Carries out the machine's actions; the objects to close that `inline`
    /// picks are returned for the caller to close and await, the others are
    /// closed in spawned tasks.
    fn perform(&self, actions: Actions<F>, inline: impl Fn(&ObjectMeta) -> bool) -> Vec<F::Object>;

    /// Carries out one action (see `perform`).
    fn perform_one(
        &self,
        action: Action<F::Object, Waker>,
        inline: &impl Fn(&ObjectMeta) -> bool,
        kept: &mut Vec<F::Object>,
    );

    /// Starts a creation in a task of its own.
    fn spawn_create(&self, ticket: CreateTicket);

    /// Gives a checked-out object back. If it must be closed (dead, or the
    /// pool closed or over size), `close_inline` returns it for the caller to
    /// close; otherwise it is closed in a spawned task.
    fn give_back(
        &self,
        checkout: Checkout<F::Object>,
        alive: bool,
        close_inline: bool,
    ) -> Option<F::Object>;

    /// Takes an object out of the pool for good.
    fn detach(&self, checkout: Checkout<F::Object>) -> F::Object;

    /// Closes an object that left the pool in a task of its own; its error,
    /// or its panic, is only counted.
    fn spawn_close(&self, object: F::Object);
}

impl<F: Factory, R: Runtime> Driver<F> for Arc<Inner<F, R>> {
    fn with_state<T>(&self, input: impl FnOnce(&mut State<F>) -> T) -> T {
        let (answer, actions) = self.with_state_deferred(input);
        let closes = self.perform(actions, |_| false);
        debug_assert!(closes.is_empty());
        answer
    }

    fn perform(&self, actions: Actions<F>, inline: impl Fn(&ObjectMeta) -> bool) -> Vec<F::Object> {
        let Drained { wake, rest } = actions;
        let mut kept = Vec::new();
        if let Some(waker) = wake {
            waker.wake();
        }
        // Most inputs leave nothing else: skip even the empty loop's drop.
        if rest.is_empty() {
            return kept;
        }
        for action in rest {
            self.perform_one(action, &inline, &mut kept);
        }
        kept
    }

    fn perform_one(
        &self,
        action: Action<F::Object, Waker>,
        inline: &impl Fn(&ObjectMeta) -> bool,
        kept: &mut Vec<F::Object>,
    ) {
        if let Action::Close { meta, reason, .. } = &action {
            self.observer.closing(*reason, meta);
        }
        match action {
            Action::Wake(waker) => waker.wake(),
            Action::Create(ticket) => self.spawn_create(ticket),
            Action::Close { object, meta, .. } if inline(&meta) => kept.push(object),
            Action::Close { object, .. } => self.spawn_close(object),
        }
    }

    fn spawn_create(&self, ticket: CreateTicket) {
        let creation = Creation {
            inner: self.clone(),
            ticket: Some(ticket),
            watch: Stopwatch::start(&self.runtime),
        };
        self.runtime.spawn(self.observer.create(async move {
            let inner = &creation.inner;
            // The call to `create` is inside the guarded future too: a
            // factory may panic before it returns its future.
            let create = AssertUnwindSafe(async { inner.factory.create().await }).catch_unwind();
            let result = match timeout(&inner.runtime, inner.timing.create_timeout, create).await {
                Some(Ok(Ok(object))) => Ok(object),
                Some(Ok(Err(error))) => Err(CreateFailure::Error(error)),
                Some(Err(_panic)) => Err(CreateFailure::Panicked),
                None => Err(CreateFailure::TimedOut),
            };
            creation.finish(result);
        }));
    }

    fn give_back(
        &self,
        checkout: Checkout<F::Object>,
        alive: bool,
        close_inline: bool,
    ) -> Option<F::Object> {
        let id = checkout.meta().id;
        let now = self.release_time();
        let ((), actions) = self.with_state_deferred(|state| {
            (state.release(checkout, now, alive)).expect("a guard holds a checkout of its own pool")
        });
        self.perform(actions, |meta| close_inline && meta.id == id)
            .pop()
    }

    fn detach(&self, checkout: Checkout<F::Object>) -> F::Object {
        self.with_state(|state| state.detach(checkout))
            .expect("a guard holds a checkout of its own pool")
    }

    fn spawn_close(&self, object: F::Object) {
        let inner = self.clone();
        self.runtime.spawn(async move {
            let _ = inner.close_counted(object).await;
        });
    }
}

/// Closes an object that left the pool for a caller who awaits it (see
/// `close_now`); if the future is dropped before it runs, the object is
/// closed in the background instead, so that it is never dropped unclosed.
pub(crate) fn close_awaited<F: Factory, R: Runtime>(
    inner: Arc<Inner<F, R>>,
    object: Option<F::Object>,
) -> impl Future<Output = Result<(), PoolError<F::Error>>> + Send + 'static {
    let mut unclosed = Unclosed { inner, object };
    async move {
        let object = unclosed.object.take();
        unclosed.inner.close_now(object).await
    }
}

/// An object to close for a caller who may drop the future first: its drop
/// closes the object in the background if nobody took it.
struct Unclosed<F: Factory, R: Runtime> {
    inner: Arc<Inner<F, R>>,
    object: Option<F::Object>,
}

impl<F: Factory, R: Runtime> Drop for Unclosed<F, R> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            self.inner.spawn_close(object);
        }
    }
}

/// A creation in flight. If its task is dropped before it finishes (the
/// runtime shut down, or could not run it), the drop reports it aborted, so
/// its slot is never lost.
struct Creation<F: Factory, R: Runtime> {
    inner: Arc<Inner<F, R>>,
    /// `None` once reported.
    ticket: Option<CreateTicket>,
    /// Started with the creation.
    watch: Stopwatch,
}

impl<F: Factory, R: Runtime> Creation<F, R> {
    /// Reports how the creation ended, one creation at a time on this
    /// thread (see [`one_at_a_time`]).
    fn finish(self, result: Result<F::Object, CreateFailure<F::Error>>) {
        // Put off, the step owns the creation: a step dropped unrun reports
        // it aborted through the drop.
        one_at_a_time(move || self.report(result));
    }

    fn report(mut self, result: Result<F::Object, CreateFailure<F::Error>>) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let now = self.inner.runtime.now();
        // Before the object is placed: whoever releases it later reads a
        // coarse time no earlier than its creation.
        self.inner.advance_coarse_clock(now);
        let outcome = match &result {
            Ok(_) => CreateOutcome::Created,
            Err(CreateFailure::Error(error)) => CreateOutcome::Failed(error),
            Err(CreateFailure::TimedOut) => CreateOutcome::TimedOut,
            Err(CreateFailure::Panicked) => CreateOutcome::Panicked,
            Err(CreateFailure::Aborted) => CreateOutcome::Aborted,
        };
        (self.inner.observer).created(&self.inner.runtime, self.watch, outcome);
        match result {
            Ok(object) => self
                .inner
                .with_state(|state| state.handle_created(ticket, object, now).map_err(drop))
                .expect("a ticket of this pool"),
            Err(failure) => {
                let refusal = match &failure {
                    CreateFailure::Error(error) => self.inner.is_refusal(error),
                    _ => false,
                };
                // An error that no waiter was counting on (a background refill) is dropped here;
                // the counters keep the tally.
                let _undelivered = self
                    .inner
                    .with_state(|state| {
                        if refusal {
                            state.handle_create_refused(ticket, failure, now)
                        } else {
                            state.handle_create_failed(ticket, failure, now)
                        }
                    })
                    .expect("a ticket of this pool");
            }
        }
    }
}

impl<F: Factory, R: Runtime> Drop for Creation<F, R> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let unreported = Creation {
                inner: self.inner.clone(),
                ticket: Some(ticket),
                watch: self.watch,
            };
            unreported.finish(Err(CreateFailure::Aborted));
        }
    }
}

/// The ends of creations put off on this thread while another one's end is
/// being reported there (see [`one_at_a_time`]); `None` while none is.
type PutOff = RefCell<Option<VecDeque<Box<dyn FnOnce()>>>>;

#[cfg(not(loom))]
std::thread_local! {
    static PUT_OFF: PutOff = const { RefCell::new(None) };
}
// loom runs its threads on one OS thread: their locals are loom's.
#[cfg(loom)]
loom::thread_local! {
    static PUT_OFF: PutOff = RefCell::new(None);
}

/// Runs `step` (the report of a creation's end) now, unless this thread is
/// already running one: then `step` is queued, and the one running runs it
/// next, in a loop.
///
/// Reporting a failed creation can start another one for the next waiter.
/// A runtime that is shutting down drops that one's task at once, inside
/// `spawn`, and its drop reports it in turn: run directly, the chain would
/// nest one stack frame per waiter, and a few thousand waiters overflow the
/// stack.
fn one_at_a_time(step: impl FnOnce() + 'static) {
    let mut step = Some(step);
    let running_here = PUT_OFF.try_with(|put_off| {
        let mut put_off = put_off.borrow_mut();
        match put_off.as_mut() {
            Some(queue) => {
                if let Some(step) = step.take() {
                    queue.push_back(Box::new(step));
                }
                false
            }
            None => {
                *put_off = Some(VecDeque::new());
                true
            }
        }
    });
    let Some(step) = step else { return };
    // The thread's locals are being destroyed: run it without a queue.
    let Ok(true) = running_here else {
        return step();
    };
    let _done = StopPuttingOff;
    step();
    while let Some(next) = PUT_OFF.with(|put_off| put_off.borrow_mut().as_mut()?.pop_front()) {
        next();
    }
}

/// Ends the queueing of [`one_at_a_time`], even when a step panics: the
/// steps still queued then are dropped, and each reports its creation
/// aborted through its drop.
struct StopPuttingOff;

impl Drop for StopPuttingOff {
    fn drop(&mut self) {
        let unrun = PUT_OFF.try_with(|put_off| put_off.borrow_mut().take());
        drop(unrun);
    }
}

/// A queued acquire. Dropping it withdraws the waiter.
struct Wait<'a, F: Factory, R: Runtime> {
    inner: &'a Arc<Inner<F, R>>,
    /// `None` once the wait ended.
    slot: Option<Arc<Slot<F>>>,
    /// Queued in this very poll, with this poll's waker: the first poll
    /// returns `Pending` without looking (a hand-off meanwhile wakes it).
    registered: bool,
}

impl<F: Factory, R: Runtime> Wait<'_, F, R> {
    /// The wait timed out: take the object if one was handed over meanwhile,
    /// else leave the queue.
    fn give_up(mut self) -> Result<Checkout<F::Object>, PoolError<F::Error>> {
        let slot = self.slot.take().expect("a pending wait has its slot");
        let served = match slot.take() {
            SlotState::Served(served) => served,
            SlotState::Waiting { waiter, .. } => {
                // Still queued when the token was taken out; the machine may
                // have served it since.
                let now = self.inner.release_time();
                self.inner
                    .with_state(|state| match state.poll_waiter(waiter, |_| ()) {
                        Ok(WaitPoll::Ready(served)) => Some(served),
                        Ok(WaitPoll::Pending(waiter)) => {
                            state
                                .cancel_waiter(waiter, now)
                                .expect("a waiter of this pool");
                            None
                        }
                        Err(_) => unreachable!("a waiter of this pool"),
                    })
                    .ok_or(PoolError::Timeout(TimeoutKind::Wait))?
            }
            SlotState::Empty => unreachable!("a pending wait holds its token or its outcome"),
        };
        served.map_err(|failure| into_pool_error(failure, || self.inner.runtime.now()))
    }
}

impl<F: Factory, R: Runtime> Future for Wait<'_, F, R> {
    type Output = Result<Checkout<F::Object>, PoolError<F::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if std::mem::take(&mut self.registered) {
            return Poll::Pending;
        }
        let slot = self.slot.as_ref().expect("polled after completion");
        let mut state = slot.lock();
        // Still queued: the waker is updated under the slot's lock, so that
        // a delivery cannot slip in between.
        if let SlotState::Waiting { waker, .. } = &mut *state {
            waker.clone_from(cx.waker());
            return Poll::Pending;
        }
        let SlotState::Served(served) = std::mem::replace(&mut *state, SlotState::Empty) else {
            unreachable!("a pending wait holds its token or its outcome");
        };
        drop(state);
        self.slot = None;
        let now = || self.inner.runtime.now();
        Poll::Ready(served.map_err(|failure| into_pool_error(failure, now)))
    }
}

impl<F: Factory, R: Runtime> Drop for Wait<'_, F, R> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        match slot.take() {
            // Delivered, never taken: given back uncounted, as if the
            // waiter had left before it was served.
            SlotState::Served(Ok(checkout)) => {
                let now = self.inner.release_time();
                (self
                    .inner
                    .with_state(|state| state.release_uncollected(checkout, now)))
                .expect("a checkout of this pool");
            }
            // Still queued when the token was taken out: the machine
            // withdraws it, or gives back what it served it meanwhile.
            SlotState::Waiting { waiter, .. } => {
                let now = self.inner.release_time();
                (self
                    .inner
                    .with_state(|state| state.cancel_waiter(waiter, now)))
                .expect("a waiter of this pool");
            }
            SlotState::Served(Err(_)) | SlotState::Empty => {}
        }
    }
}

/// What a waiter the machine failed gets; `now` reads the clock, for a refusal.
fn into_pool_error<E: std::error::Error>(
    failure: Failure<CreateFailure<E>>,
    now: impl FnOnce() -> Instant,
) -> PoolError<E> {
    match failure {
        Failure::Refused { until } => refused(until, now()),
        Failure::Closed => PoolError::Closed,
        Failure::Create(CreateFailure::Error(error)) => PoolError::Create(error),
        Failure::Create(CreateFailure::TimedOut) => PoolError::Timeout(TimeoutKind::Create),
        Failure::Create(CreateFailure::Aborted) => PoolError::CreateAborted,
        Failure::Create(CreateFailure::Panicked) => PoolError::CreatePanicked,
    }
}

/// The error of a caller turned away by a refusal back-off that lasts until `until`.
fn refused<E: std::error::Error>(until: Instant, now: Instant) -> PoolError<E> {
    PoolError::Refused {
        retry_in: until.saturating_duration_since(now),
    }
}

/// Runs `future` for at most `limit`; `None` when the time ran out.
async fn timeout<R: Runtime, T>(
    runtime: &R,
    limit: Option<Duration>,
    future: impl Future<Output = T>,
) -> Option<T> {
    let Some(limit) = limit else {
        return Some(future.await);
    };
    match select(pin!(future), pin!(runtime.sleep(limit))).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

#[cfg(not(loom))]
/// The pool's upkeep: reaps idle and old objects, resumes a paused
/// `min_idle` refill and, with an `idle_check_interval`, closes idle objects
/// that died. It wakes at each deadline the machine names (early when a
/// deadline comes earlier), and at least every `tick`. It holds the pool
/// weakly and ends once the pool is dropped or closed.
async fn upkeep_loop<F: Factory, R: Runtime>(
    pool: Weak<Inner<F, R>>,
    runtime: R,
    tick: Duration,
    idle_check_interval: Option<Duration>,
) {
    let mut next_idle_check =
        idle_check_interval.and_then(|interval| runtime.now().checked_add(interval));
    loop {
        let (pause, woken) = {
            let Some(inner) = pool.upgrade() else { return };
            // Listen before reading the deadline, so that no wake-up is lost in between.
            let woken = inner.upkeep_wake.listen();
            let now = runtime.now();
            let (pause, actions) = {
                let mut locked = inner.lock();
                if locked.machine.is_closed() {
                    return;
                }
                locked.machine.handle_timeout(now);
                if let (Some(interval), Some(at)) = (idle_check_interval, next_idle_check)
                    && at <= now
                {
                    locked.machine.evict_dead(|object| inner.is_alive(object));
                    next_idle_check = now.checked_add(interval);
                }
                let pause = [locked.machine.poll_timeout(), next_idle_check]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(tick, |at| at.saturating_duration_since(now).min(tick))
                    .max(Duration::from_millis(1));
                // Set under the same lock as the deadline was read: an input
                // that brings it earlier from now on wakes this task.
                locked.upkeep_at = Some(now + pause);
                (pause, locked.drain())
            };
            inner.perform(actions, |_| false);
            (pause, woken)
        };
        select(pin!(runtime.sleep(pause)), woken).await;
    }
}
