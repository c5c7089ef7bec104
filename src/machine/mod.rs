//! The sans-IO pool state machine.
//!
//! [`PoolState`] is the whole of the pool's logic, with no I/O in it: it never
//! reads a clock (every input that needs the time takes `now`), never spawns,
//! never awaits and holds no lock. The same inputs give the same outputs, so it
//! can be tested without a runtime, fuzzed, and embedded in any executor.
//!
//! # Driving it
//!
//! Inputs are method calls: [`acquire`](PoolState::acquire),
//! [`release`](PoolState::release), [`handle_created`](PoolState::handle_created),
//! [`handle_timeout`](PoolState::handle_timeout), [`close`](PoolState::close) and
//! so on. What the driver must then do comes out as [`Action`]s, drained with
//! [`poll_action`](PoolState::poll_action) after every input:
//!
//! - [`Action::Wake`]: a waiter was served (an object, or a failure); wake it so
//!   that it calls [`poll_waiter`](PoolState::poll_waiter).
//! - [`Action::Create`]: make one object, then report the result with
//!   `handle_created` or `handle_create_failed`, giving the ticket back.
//! - [`Action::Close`]: dispose of this object; it left the pool for good.
//!
//! and [`poll_timeout`](PoolState::poll_timeout) says when to call
//! `handle_timeout` next. `examples/threads.rs` drives it from plain threads.
//!
//! # Tokens
//!
//! Objects, waiters and creations are named by tokens the machine hands out:
//! [`Checkout`], [`WaiterId`] and [`CreateTicket`]. They cannot be cloned or
//! made outside this crate, and every input that ends one consumes it, so an
//! object cannot be returned twice and a waiter cannot be cancelled twice. A
//! token of another `PoolState` is refused with [`Foreign`], which gives it back.
//!
//! # Exclusive and shared pools
//!
//! [`PoolState::new`] makes an exclusive pool: an object is handed out to
//! one borrower at a time, who owns it until it is given back.
//! [`PoolState::shared`] makes a shared pool: an object is lent to up to
//! `max_leases` borrowers at once, each holding a clone (a handle) of it,
//! and the machine keeps the object itself in its lease table until the
//! last lease comes back (see `leases.rs`). An object with no lease out is
//! idle, as in an exclusive pool. A borrower goes to an idle object first,
//! then to the lent object with the fewest leases: spreading the load over
//! the objects there are, while a new one is made only when all are full.
//! A lent object found dead or past `max_lifetime` is *retired*: it takes
//! no new lease and leaves the pool with its last one.
//!
//! # Invariants
//!
//! `size` is `idle + in_use + creating`, where `in_use` counts objects (lent
//! ones once, however many leases they have). After every input:
//!
//! 1. **Capacity**: `size <= max_size`, or a [`resize`](PoolState::resize)
//!    shrank the pool below `size`; then no object is pooled or created while
//!    `size > max_size`, so the idle list is empty. `creating <= max_creating`.
//! 2. **Direct hand-off**: while a waiter is queued, the idle list is empty
//!    and no lent object has room for another lease (a free object, or a
//!    free lease, goes to the oldest waiter, never to a newcomer).
//! 3. **No stall**: the machine has started every creation it may: queued
//!    waiters (`max_leases` per creation) and the `min_idle` target are
//!    covered by creations in flight, unless capacity, `max_creating`, the
//!    refill back-off or a refusal back-off forbids more; and in a refusal
//!    back-off, every queued waiter is covered by a creation in flight (the
//!    others were failed at once).
//! 4. **Closed**: once closed, nothing is idle, no waiter is queued and
//!    every lent object is retired.
//! 5. **Queue**: the waiter registry's links and counts agree.
//! 6. **Objects**: every idle object has a distinct id and was last used no
//!    earlier than it was created.
//! 7. **Leases**: every lent object has between 1 and `max_leases` leases
//!    out (held by borrowers or served waiters); they add up to
//!    `Status::leases`; the lent objects are `in_use`; the least-loaded index
//!    holds exactly the lent objects that are not retired and not full.
//!
//! [`check_invariants`](PoolState::check_invariants) checks all of them; the
//! tests and the fuzz target call it after every step.
//!
//! # Cost
//!
//! `acquire`, `release`, `poll_waiter`, `cancel_waiter`, `handle_created` and
//! `handle_create_failed` are O(1) amortised in the number of idle objects and of
//! waiters (a dead or expired idle object is skipped once and never again); in
//! a shared pool, O(log n) in the number of lent objects for each lease taken
//! or given back (a retired object is skipped once and never again).
//! `handle_timeout` reaps idle-timed-out objects in O(1) each; the max-lifetime
//! sweep is O(idle) and runs only when the earliest lifetime deadline of an
//! idle object has passed. `retain` and `evict_dead` are O(idle).

mod leases;
mod waiters;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::ConfigError;
use leases::{Leases, Lent, Retired};
use waiters::{Key, Taken, Waiters};

/// The first pause before a failed background refill (for `min_idle`) is tried again.
pub const REFILL_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between background refill attempts that keep failing.
pub const REFILL_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The first pause after a creation the peer refused, by default
/// ([`Limits::refusal_backoff`]).
pub const DEFAULT_REFUSAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause after refusals that keep coming (unless
/// [`Limits::refusal_backoff`] is longer).
pub const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The limits a [`PoolState`] keeps. Build one with [`Limits::new`] and the
/// `with_*` methods; [`PoolState::new`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most objects at once: idle, in use and being created. At least 1.
    pub max_size: usize,
    /// Most creations in flight at once. At least 1; `usize::MAX` (the
    /// default) leaves them capped by `max_size` alone, whatever it is resized to.
    pub max_creating: usize,
    /// Idle objects kept ready, created in the background. At most `max_size`.
    pub min_idle: usize,
    /// An object idle this long is closed (never below `min_idle` idle objects).
    pub idle_timeout: Option<Duration>,
    /// An object this old is closed instead of being handed out or pooled.
    pub max_lifetime: Option<Duration>,
    /// The first pause after a creation the peer refused
    /// ([`PoolState::handle_create_refused`]); each refusal in a row doubles
    /// it, up to [`REFUSAL_BACKOFF_MAX`] (or this, if longer).
    pub refusal_backoff: Duration,
}

impl Limits {
    /// `max_size` objects at most, all other limits off (creations capped by `max_size` alone).
    pub fn new(max_size: usize) -> Self {
        Limits {
            max_size,
            max_creating: usize::MAX,
            min_idle: 0,
            idle_timeout: None,
            max_lifetime: None,
            refusal_backoff: DEFAULT_REFUSAL_BACKOFF,
        }
    }

    /// Checks the limits, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if self.max_creating == 0 {
            return Err(ConfigError::ZeroMaxCreating);
        }
        if self.min_idle > self.max_size {
            return Err(ConfigError::MinIdleAboveMaxSize {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("refusal_backoff", Some(self.refusal_backoff)),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        Ok(())
    }
}

/// Identifies one `PoolState`, so that tokens of another are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolId(u64);

impl PoolId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        PoolId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What the pool knows of one object.
///
/// [`Pooled::meta`](crate::Pooled::meta) gives it for an object in use, and
/// [`Pool::retain`](crate::Pool::retain) for each idle object it looks at:
///
/// ```
/// use wtpool_tokio::Pool;
/// # struct Numbers;
/// # impl wtpool::Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Numbers, 4)?;
/// let (a, b) = (pool.acquire().await?, pool.acquire().await?);
/// assert_eq!((a.meta().id, b.meta().id), (0, 1)); // in order of creation
/// drop(a);
/// let a = pool.acquire().await?; // the same object again
/// assert_eq!((a.meta().id, a.meta().checkouts), (0, 2));
/// drop((a, b));
///
/// // Close the idle objects handed out more than once:
/// assert_eq!(pool.retain(|_, meta| meta.checkouts < 2), 1);
/// assert_eq!(pool.status().idle, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Unique within its pool, in order of creation.
    pub id: u64,
    /// When its creation was reported.
    pub created_at: Instant,
    /// When it was last given back (or created), as the driver told the
    /// machine. The async [`Pool`](crate::Pool) reads the clock at a release
    /// only when `idle_timeout` or `max_lifetime` needs the time; without
    /// either, it stamps the end of the pool's latest creation instead (no
    /// earlier than this object's, and never going back).
    pub last_used: Instant,
    /// How many times it was handed out.
    pub checkouts: u64,
}

/// An object handed out by the pool. Give it back with
/// [`release`](PoolState::release), or take it out with [`detach`](PoolState::detach).
#[derive(Debug)]
pub struct Checkout<T> {
    /// The object itself (exclusive pool), or a handle on it (shared pool).
    object: T,
    meta: ObjectMeta,
    pool: PoolId,
    /// In a shared pool, the lent object this is a lease on.
    lease: Option<usize>,
}

impl<T> Checkout<T> {
    /// The object.
    pub fn object(&self) -> &T {
        &self.object
    }

    /// The object, mutably.
    pub fn object_mut(&mut self) -> &mut T {
        &mut self.object
    }

    /// What the pool knows of the object (as it was when this checkout was
    /// handed out).
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// Whether this is a shared lease: the object is a handle on one that
    /// other borrowers may hold at the same time.
    pub fn is_shared(&self) -> bool {
        self.lease.is_some()
    }
}

/// A waiter queued by [`acquire`](PoolState::acquire).
#[derive(Debug)]
pub struct WaiterId {
    key: Key,
    pool: PoolId,
}

/// A creation the driver must carry out ([`Action::Create`]).
#[derive(Debug)]
pub struct CreateTicket {
    pool: PoolId,
}

/// A token of another `PoolState`, given back unused.
#[derive(thiserror::Error)]
#[error("a token of another pool was given to this one")]
pub struct Foreign<X>(pub X);

impl<X> std::fmt::Debug for Foreign<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Foreign(..)")
    }
}

/// The answer to [`acquire`](PoolState::acquire).
#[derive(Debug)]
pub enum Acquire<T> {
    /// An idle object, checked alive and unexpired.
    Ready(Checkout<T>),
    /// Queued: call [`poll_waiter`](PoolState::poll_waiter) when woken.
    Queued(WaiterId),
    /// The pool is closed.
    Closed,
    /// Nothing is ready, and a creation was refused lately: the pool backs
    /// off until `until` rather than queue the caller for a creation that
    /// would be refused too.
    Refused {
        /// When the back-off ends.
        until: Instant,
    },
}

/// Why a waiter was served without an object.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure<E> {
    /// The pool was closed.
    Closed,
    /// The creation meant for this waiter failed.
    Create(E),
    /// A creation was refused (for another waiter), and the pool backs off
    /// until `until` rather than try one for this waiter.
    Refused {
        /// When the back-off ends.
        until: Instant,
    },
}

/// The answer to [`poll_waiter`](PoolState::poll_waiter).
#[derive(Debug)]
pub enum WaitPoll<T, E> {
    /// Still queued; here is the token back.
    Pending(WaiterId),
    /// Served.
    Ready(Result<Checkout<T>, Failure<E>>),
}

/// Why an object leaves the pool through [`Action::Close`].
///
/// ```
/// use std::time::Instant;
/// use wtpool::machine::{Action, CloseReason, Limits, PoolState};
///
/// // With `min_idle`, a new machine asks at once for the object to keep idle.
/// let limits = Limits { min_idle: 1, ..Limits::new(2) };
/// let mut pool: PoolState<&str, (), ()> = PoolState::new(limits)?;
/// let Some(Action::Create(ticket)) = pool.poll_action() else { unreachable!() };
/// pool.handle_created(ticket, "a connection", Instant::now()).expect("our ticket");
///
/// assert_eq!(pool.retain(|_, _| false), 1);
/// let Some(Action::Close { object, reason, .. }) = pool.poll_action() else { unreachable!() };
/// assert_eq!((object, reason), ("a connection", CloseReason::Retain));
/// assert_eq!(reason.as_str(), "retain"); // as logs and metrics label it
/// # Ok::<(), wtpool::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Found dead at checkout, given back dead, or found dead while idle by
    /// [`evict_dead`](PoolState::evict_dead).
    Dead,
    /// Idle longer than `idle_timeout`.
    IdleTimeout,
    /// Older than `max_lifetime`.
    MaxLifetime,
    /// Over the size after [`resize`](PoolState::resize) shrank the pool.
    Shrunk,
    /// Refused by the predicate of [`retain`](PoolState::retain).
    Retain,
    /// The pool is closed.
    PoolClosed,
}

impl CloseReason {
    /// The reason in snake case (`"idle_timeout"`), as logs and metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Dead => "dead",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Shrunk => "shrunk",
            CloseReason::Retain => "retain",
            CloseReason::PoolClosed => "pool_closed",
        }
    }
}

/// What the driver must do next; drained with [`poll_action`](PoolState::poll_action).
#[derive(Debug)]
pub enum Action<T, W> {
    /// A waiter was served: wake it (the payload it registered with).
    Wake(W),
    /// Create one object and report it with `handle_created` or `handle_create_failed`.
    Create(CreateTicket),
    /// Dispose of this object: it has left the pool.
    Close {
        /// The object.
        object: T,
        /// What the pool knew of it.
        meta: ObjectMeta,
        /// Why it left.
        reason: CloseReason,
    },
}

/// A snapshot of the pool's occupancy.
///
/// ```
/// use wtpool::Status;
/// use wtpool_tokio::Pool;
/// # struct Numbers;
/// # impl wtpool::Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Numbers, 4)?;
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// drop(b); // back to the idle list
/// let expected = Status { max_size: 4, size: 2, idle: 1, in_use: 1, leases: 1, ..Status::default() };
/// assert_eq!(pool.status(), expected);
///
/// drop(a);
/// pool.close().await?;
/// assert_eq!(pool.status(), Status { max_size: 4, closed: true, ..Status::default() });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// The most objects the pool may hold.
    pub max_size: usize,
    /// Objects held now: `idle + in_use + creating`.
    pub size: usize,
    /// Objects ready in the idle list.
    pub idle: usize,
    /// Objects handed out (a served waiter that has not collected its object counts here).
    pub in_use: usize,
    /// Leases out: `in_use` in an exclusive pool; in a shared pool, the
    /// borrowers of the `in_use` objects.
    pub leases: usize,
    /// Creations in flight.
    pub creating: usize,
    /// Waiters queued.
    pub waiting: usize,
    /// Whether the pool is closed.
    pub closed: bool,
}

/// Running totals since the pool was made.
///
/// ```
/// use wtpool::Counters;
/// use wtpool_tokio::Pool;
/// # struct Numbers;
/// # impl wtpool::Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Numbers, 4)?;
/// drop(pool.acquire().await?); // created, then idle
/// let again = pool.acquire().await?; // the idle one, reused
/// again.discard().await?; // closed, its slot freed
///
/// let expected = Counters {
///     create_started: 1,
///     created: 1,
///     checkouts: 2,
///     reused: 1,
///     closed: 1,
///     ..Counters::default()
/// };
/// assert_eq!(pool.counters(), expected);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Creations started.
    pub create_started: u64,
    /// Objects created.
    pub created: u64,
    /// Creations that failed.
    pub create_failed: u64,
    /// Objects handed out (collected by their borrower; the async
    /// [`Pool`](crate::Pool) collects for a queued waiter as it serves it,
    /// and takes the count back if the waiter leaves without taking it).
    pub checkouts: u64,
    /// Checkouts of an object that had been handed out before.
    pub reused: u64,
    /// Objects that left through [`Action::Close`].
    pub closed: u64,
    /// Objects taken out with [`detach`](PoolState::detach).
    pub detached: u64,
    /// Closes that failed, as the driver reported with
    /// [`handle_close_failed`](PoolState::handle_close_failed).
    pub close_failed: u64,
    /// Creations the peer refused, as the driver reported with
    /// [`handle_create_refused`](PoolState::handle_create_refused) (counted
    /// in `create_failed` too).
    pub refused: u64,
}

/// An object in the idle list.
struct Idle<T> {
    object: T,
    meta: ObjectMeta,
}

/// The pool's state: capacity accounting, idle list, waiter registry and closed flag.
///
/// `T` is the pooled object, `E` a creation error, `W` the payload a waiter is
/// woken with (a `Waker`, a thread handle, `()`).
///
/// Driven by hand, with no runtime: every input is followed by a drain of
/// [`poll_action`](Self::poll_action).
///
/// ```
/// use std::time::Instant;
/// use wtpool::machine::{Acquire, Action, Limits, PoolState, WaitPoll};
///
/// let mut pool: PoolState<String, std::io::Error, &str> = PoolState::new(Limits::new(1))?;
/// let now = Instant::now();
///
/// // Nothing idle: the caller queues, and the machine asks for a creation.
/// let Acquire::Queued(waiter) = pool.acquire(now, |_| true, || "wake me") else { unreachable!() };
/// let Some(Action::Create(ticket)) = pool.poll_action() else { unreachable!() };
///
/// // The driver creates the object (here at once) and reports it.
/// pool.handle_created(ticket, "a connection".to_owned(), now).expect("our ticket");
/// let Some(Action::Wake(payload)) = pool.poll_action() else { unreachable!() };
/// assert_eq!(payload, "wake me");
///
/// // Woken, the waiter collects its object; given back, it idles.
/// let Ok(WaitPoll::Ready(Ok(checkout))) = pool.poll_waiter(waiter, |_| ()) else { unreachable!() };
/// assert_eq!(checkout.object(), "a connection");
/// pool.release(checkout, now, true).expect("our checkout");
/// assert_eq!(pool.status().idle, 1);
/// pool.check_invariants();
/// # Ok::<(), wtpool::ConfigError>(())
/// ```
pub struct PoolState<T, E, W> {
    id: PoolId,
    limits: Limits,
    /// Least recently used at the front; checkout takes from the back (LIFO),
    /// so cold objects gather at the front, where the idle reaper looks.
    idle: VecDeque<Idle<T>>,
    /// Objects handed out (in a shared pool, `leases.objects()`).
    in_use: usize,
    /// In a shared pool, the objects lent and their leases.
    leases: Option<Leases<T>>,
    creating: usize,
    waiters: Waiters<W, Result<Checkout<T>, Failure<E>>>,
    closed: bool,
    actions: VecDeque<Action<T, W>>,
    next_object_id: u64,
    /// No earlier than the earliest `created_at + max_lifetime` of an idle object.
    next_lifetime_sweep: Option<Instant>,
    /// Background refill is paused until then, after a refill failed.
    refill_paused_until: Option<Instant>,
    refill_backoff: Duration,
    /// No creation starts until then, after a creation was refused.
    refused_until: Option<Instant>,
    refusal_backoff: Duration,
    counters: Counters,
}

impl<T, E, W> std::fmt::Debug for PoolState<T, E, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("limits", &self.limits)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<T, E, W> PoolState<T, E, W> {
    /// A new, empty pool. With `min_idle > 0` it asks at once for the
    /// creations that fill it ([`Action::Create`]).
    pub fn new(limits: Limits) -> Result<Self, ConfigError> {
        Self::with_leases(limits, None)
    }

    /// A new, empty shared pool: each object is lent to up to `max_leases`
    /// borrowers at once, each holding a clone of it (a handle, such as an
    /// `Arc` or a connection handle), and a borrower goes to the live object
    /// with the fewest leases. A new object is created only when every live
    /// one is full, and for `n` queued waiters only `ceil(n / max_leases)`
    /// creations start.
    pub fn shared(limits: Limits, max_leases: usize) -> Result<Self, ConfigError>
    where
        T: Clone,
    {
        if max_leases == 0 {
            return Err(ConfigError::ZeroMaxLeases);
        }
        Self::with_leases(limits, Some(Leases::new(max_leases, T::clone)))
    }

    fn with_leases(limits: Limits, leases: Option<Leases<T>>) -> Result<Self, ConfigError> {
        limits.validate()?;
        let refusal_backoff = limits.refusal_backoff;
        let mut state = PoolState {
            id: PoolId::fresh(),
            limits,
            idle: VecDeque::new(),
            in_use: 0,
            leases,
            creating: 0,
            waiters: Waiters::new(),
            closed: false,
            actions: VecDeque::new(),
            next_object_id: 0,
            next_lifetime_sweep: None,
            refill_paused_until: None,
            refill_backoff: REFILL_BACKOFF_MIN,
            refused_until: None,
            refusal_backoff,
            counters: Counters::default(),
        };
        state.start_creations();
        Ok(state)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Most borrowers of one object at once: 1 in an exclusive pool.
    pub fn max_leases(&self) -> usize {
        self.leases.as_ref().map_or(1, Leases::max)
    }

    /// Objects held: idle, in use and being created.
    pub fn size(&self) -> usize {
        self.idle.len() + self.in_use + self.creating
    }

    /// A snapshot of the occupancy.
    pub fn status(&self) -> Status {
        Status {
            max_size: self.limits.max_size,
            size: self.size(),
            idle: self.idle.len(),
            in_use: self.in_use,
            leases: self.leases.as_ref().map_or(self.in_use, Leases::total),
            creating: self.creating,
            waiting: self.waiters.waiting(),
            closed: self.closed,
        }
    }

    /// Running totals.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ----- inputs -----

    /// Asks for an object.
    ///
    /// While a refusal back-off runs (see
    /// [`handle_create_refused`](Self::handle_create_refused)), a caller that
    /// finds nothing ready gets [`Acquire::Refused`] instead of a place in
    /// the queue.
    ///
    /// When nobody is queued, idle objects are tried most recently used first:
    /// one past `max_lifetime`, or one that `is_alive` finds dead, is closed
    /// (its slot freed) and the next one tried. In a shared pool, once no idle
    /// object is left, the lent object with the fewest leases and room for
    /// one more is tried next: one dead or past `max_lifetime` is retired (it
    /// takes no new lease, and is closed when its last lease comes back) and
    /// the next one tried. Otherwise the caller is queued behind the waiters
    /// already there, with `payload()` to be woken with, and creations start
    /// if capacity allows.
    pub fn acquire(
        &mut self,
        now: Instant,
        mut is_alive: impl FnMut(&mut T) -> bool,
        payload: impl FnOnce() -> W,
    ) -> Acquire<T> {
        if self.closed {
            return Acquire::Closed;
        }
        if let Some(checkout) = self.take_ready(now, &mut is_alive) {
            // Taking an idle object (or closing dead ones) may leave
            // `min_idle` short: start the refill now (invariant 3).
            self.start_creations();
            return Acquire::Ready(self.hand_out(checkout));
        }
        if let Some(until) = self.refused_until {
            if now < until {
                return Acquire::Refused { until };
            }
            // The back-off is over: this caller's creation tries again.
            self.refused_until = None;
        }
        let key = self.waiters.push(payload());
        self.start_creations();
        Acquire::Queued(WaiterId { key, pool: self.id })
    }

    /// A live object for a caller with nobody queued ahead (invariant 2:
    /// while a waiter is queued, nothing is ready): an idle one, most
    /// recently used first, else a lease on the least loaded lent one.
    fn take_ready(
        &mut self,
        now: Instant,
        is_alive: &mut impl FnMut(&mut T) -> bool,
    ) -> Option<Checkout<T>> {
        while let Some(Idle { mut object, meta }) = self.idle.pop_back() {
            let reason = if self.outlived(&meta, now) {
                CloseReason::MaxLifetime
            } else if !is_alive(&mut object) {
                CloseReason::Dead
            } else {
                return Some(self.lend(object, meta));
            };
            self.close_object(object, meta, reason);
        }
        let max_lifetime = self.limits.max_lifetime;
        let leases = self.leases.as_mut()?;
        while let Some(key) = leases.least_loaded() {
            let lent = leases.get_mut(key);
            let reason = if outlived(max_lifetime, &lent.meta, now) {
                CloseReason::MaxLifetime
            } else if !is_alive(&mut lent.object) {
                CloseReason::Dead
            } else {
                return Some(self.lease_on(key));
            };
            leases.retire(key, Retired::Close(reason));
        }
        None
    }

    /// Asks a queued waiter whether it has been served. `update` may change its
    /// payload (say, to a newer waker) while it still waits.
    pub fn poll_waiter(
        &mut self,
        waiter: WaiterId,
        update: impl FnOnce(&mut W),
    ) -> Result<WaitPoll<T, E>, Foreign<WaiterId>> {
        if waiter.pool != self.id {
            return Err(Foreign(waiter));
        }
        match self.waiters.take_served(waiter.key) {
            Ok(Some(outcome)) => Ok(WaitPoll::Ready(outcome.map(|c| self.hand_out(c)))),
            // A key of this pool that names no live waiter cannot be made:
            // `WaiterId` is consumed by every input that frees its slot.
            Ok(None) => Ok(WaitPoll::Ready(Err(Failure::Closed))),
            Err(key) => {
                if let Some(payload) = self.waiters.payload_mut(&key) {
                    update(payload);
                }
                Ok(WaitPoll::Pending(WaiterId { key, pool: self.id }))
            }
        }
    }

    /// Withdraws a waiter (its future was dropped, or it timed out). If it had
    /// been served an object meanwhile, that object is given back at `now`: to
    /// the next waiter, or to the idle list. Nothing is lost.
    pub fn cancel_waiter(
        &mut self,
        waiter: WaiterId,
        now: Instant,
    ) -> Result<(), Foreign<WaiterId>> {
        if waiter.pool != self.id {
            return Err(Foreign(waiter));
        }
        match self.waiters.take(waiter.key) {
            // Given back now, as a borrower would: its `last_used` is now,
            // so the idle list stays least recently used first.
            Some(Taken::Served(Ok(checkout))) => self.give_back(checkout, now, true),
            // A waiter that leaves may leave a creation without a taker: it
            // then goes to the idle list (or the next newcomer).
            Some(Taken::Waiting(_)) | Some(Taken::Served(Err(_))) | None => {}
        }
        Ok(())
    }

    /// Gives back what [`poll_waiter`](Self::poll_waiter) collected for a
    /// waiter that then left before its borrower took it: for a driver that
    /// collects on its waiters' behalf as they are served (the async
    /// [`Pool`](crate::Pool) does, so that a woken waiter need not take the
    /// pool's lock). The same as if the waiter had been cancelled before
    /// collecting: the object goes to the oldest waiter, or idles, and the
    /// collection is not counted as a checkout. (In a shared pool, a lease on
    /// the same object collected in between keeps the count its meta showed.)
    pub fn release_uncollected(
        &mut self,
        mut checkout: Checkout<T>,
        now: Instant,
    ) -> Result<(), Foreign<Checkout<T>>> {
        if checkout.pool != self.id {
            return Err(Foreign(checkout));
        }
        // Undoes `hand_out`: one collection fewer of the object, and one
        // reuse fewer unless it was the object's only one (in a shared pool,
        // other leases may have been collected since this one).
        self.counters.checkouts -= 1;
        checkout.meta.checkouts -= 1;
        let remaining = match (checkout.lease, &mut self.leases) {
            (Some(key), Some(leases)) => leases.uncollect(key),
            _ => checkout.meta.checkouts,
        };
        if remaining > 0 {
            self.counters.reused -= 1;
        }
        self.give_back(checkout, now, true);
        Ok(())
    }

    /// Gives an object back. `alive` is the driver's verdict on it: a dead,
    /// expired or surplus object is closed and its slot freed; a live one goes
    /// to the oldest waiter, or to the idle list.
    pub fn release(
        &mut self,
        checkout: Checkout<T>,
        now: Instant,
        alive: bool,
    ) -> Result<(), Foreign<Checkout<T>>> {
        if checkout.pool != self.id {
            return Err(Foreign(checkout));
        }
        self.give_back(checkout, now, alive);
        Ok(())
    }

    /// [`release`](Self::release), once the token is checked.
    fn give_back(&mut self, checkout: Checkout<T>, now: Instant, alive: bool) {
        let Checkout {
            object,
            mut meta,
            lease,
            ..
        } = checkout;
        match lease {
            // The borrower's handle is dropped; the lent object stays.
            Some(key) => {
                let dead = (!alive).then_some(Retired::Close(CloseReason::Dead));
                self.return_lease(key, now, dead);
            }
            None => {
                self.in_use -= 1;
                meta.last_used = now;
                if alive {
                    self.put_back(object, meta, now);
                } else {
                    self.close_object(object, meta, CloseReason::Dead);
                }
            }
        }
        self.start_creations();
    }

    /// Takes an object out of the pool for good; its slot is freed. In a
    /// shared pool, the borrower keeps its handle and the object takes no new
    /// lease; its slot is freed when the last lease comes back, and the pool
    /// does not close it.
    pub fn detach(&mut self, checkout: Checkout<T>) -> Result<T, Foreign<Checkout<T>>> {
        if checkout.pool != self.id {
            return Err(Foreign(checkout));
        }
        match checkout.lease {
            Some(key) => {
                let leases = self.leases.as_mut().expect("a lease is of a shared pool");
                leases.retire(key, Retired::Detached);
                if let Some(Lent {
                    object,
                    meta,
                    retired,
                    ..
                }) = leases.give_back(key)
                {
                    self.in_use -= 1;
                    self.leave_retired(object, meta, retired.expect("retired above"));
                }
            }
            None => {
                self.in_use -= 1;
                self.counters.detached += 1;
            }
        }
        self.start_creations();
        Ok(checkout.object)
    }

    /// Reports a creation that succeeded. The object goes to the oldest
    /// waiter, or to the idle list; after close, or over a shrunk size, it is closed.
    pub fn handle_created(
        &mut self,
        ticket: CreateTicket,
        object: T,
        now: Instant,
    ) -> Result<(), Foreign<(CreateTicket, T)>> {
        if ticket.pool != self.id {
            return Err(Foreign((ticket, object)));
        }
        self.creating -= 1;
        self.counters.created += 1;
        self.refill_backoff = REFILL_BACKOFF_MIN;
        self.refused_until = None;
        self.refusal_backoff = self.limits.refusal_backoff;
        let meta = ObjectMeta {
            id: self.next_object_id,
            created_at: now,
            last_used: now,
            checkouts: 0,
        };
        self.next_object_id += 1;
        self.put_back(object, meta, now);
        self.start_creations();
        Ok(())
    }

    /// Reports a creation that failed. If a queued waiter was counting on it
    /// (more waiters than creations still in flight), the oldest is failed
    /// with `error`; otherwise it was a background refill, which pauses with a
    /// growing back-off, and `error` is given back undelivered.
    pub fn handle_create_failed(
        &mut self,
        ticket: CreateTicket,
        error: E,
        now: Instant,
    ) -> Result<Option<E>, Foreign<CreateTicket>> {
        self.end_failed_creation(ticket)?;
        let undelivered = self.fail_uncovered(error);
        if undelivered.is_some() {
            self.refill_paused_until = Some(now + self.refill_backoff);
            self.refill_backoff = (self.refill_backoff * 2).min(REFILL_BACKOFF_MAX);
        }
        self.start_creations();
        Ok(undelivered)
    }

    /// Reports a creation the peer refused (an HTTP 429 or 503, a refused
    /// handshake): a sign that the next ones would be refused too. No
    /// creation starts until a back-off ends ([`Limits::refusal_backoff`],
    /// 0.5 s by default, doubling with each refusal in a row up to 30 s,
    /// reset by a creation that succeeds); the oldest
    /// waiter no creation in flight covers gets `error`, and every other one
    /// [`Failure::Refused`] at once, rather than a handshake of its own.
    /// Returns `error` if no waiter took it.
    pub fn handle_create_refused(
        &mut self,
        ticket: CreateTicket,
        error: E,
        now: Instant,
    ) -> Result<Option<E>, Foreign<CreateTicket>> {
        self.end_failed_creation(ticket)?;
        self.counters.refused += 1;
        // A pause past what `Instant` can hold is cut to the usual longest.
        let until = (now.checked_add(self.refusal_backoff))
            .or_else(|| now.checked_add(REFUSAL_BACKOFF_MAX))
            .unwrap_or(now);
        self.refused_until = Some(until);
        let longest = REFUSAL_BACKOFF_MAX.max(self.limits.refusal_backoff);
        self.refusal_backoff = self.refusal_backoff.saturating_mul(2).min(longest);
        Ok(self.fail_uncovered(error))
    }

    /// A creation ended without an object: checks its ticket and counts it.
    fn end_failed_creation(&mut self, ticket: CreateTicket) -> Result<(), Foreign<CreateTicket>> {
        if ticket.pool != self.id {
            return Err(Foreign(ticket));
        }
        self.creating -= 1;
        self.counters.create_failed += 1;
        Ok(())
    }

    /// A creation failed: fails the oldest waiter that the creations still
    /// in flight do not cover (each serves up to `max_leases`) with `error`,
    /// and, while a refusal back-off runs (no creation will start for
    /// them), every other uncovered waiter with [`Failure::Refused`].
    /// Returns `error` if no waiter took it.
    fn fail_uncovered(&mut self, error: E) -> Option<E> {
        let mut error = Some(error);
        while self.waiters.waiting() > self.creating.saturating_mul(self.max_leases()) {
            let failure = match (error.take(), self.refused_until) {
                (Some(error), _) => Failure::Create(error),
                (None, Some(until)) => Failure::Refused { until },
                // The next creation serves the others.
                (None, None) => break,
            };
            match self.waiters.serve_oldest(Err(failure)) {
                Ok(payload) => self.actions.push_back(Action::Wake(payload)),
                Err(_) => unreachable!("a waiter is queued"),
            }
        }
        error
    }

    /// Reports that closing an object ([`Action::Close`]) failed. The object has
    /// left the pool either way; this only keeps the tally.
    pub fn handle_close_failed(&mut self) {
        self.counters.close_failed += 1;
    }

    /// Lets time pass: closes idle objects past `idle_timeout` (keeping
    /// `min_idle`) or `max_lifetime`, resumes a paused refill and ends a
    /// refusal back-off.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.refill_paused_until.is_some_and(|until| until <= now) {
            self.refill_paused_until = None;
        }
        if self.refused_until.is_some_and(|until| until <= now) {
            self.refused_until = None;
        }
        if let Some(idle_timeout) = self.limits.idle_timeout {
            while self.idle.len() > self.limits.min_idle
                && self.idle.front().is_some_and(|i| {
                    now.saturating_duration_since(i.meta.last_used) >= idle_timeout
                })
            {
                let Idle { object, meta } = self.idle.pop_front().expect("checked non-empty");
                self.close_object(object, meta, CloseReason::IdleTimeout);
            }
        }
        if self.next_lifetime_sweep.is_some_and(|at| at <= now) {
            self.next_lifetime_sweep = None;
            let idle = std::mem::take(&mut self.idle);
            for Idle { object, meta } in idle {
                if self.outlived(&meta, now) {
                    self.close_object(object, meta, CloseReason::MaxLifetime);
                } else {
                    self.push_idle(object, meta);
                }
            }
        }
        self.start_creations();
    }

    /// Closes the pool: every queued waiter fails with [`Failure::Closed`] at
    /// once and every idle object is closed. Objects given back or created
    /// later are closed too. Closing twice does nothing more.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        while let Ok(payload) = self.waiters.serve_oldest(Err(Failure::Closed)) {
            self.actions.push_back(Action::Wake(payload));
        }
        while let Some(Idle { object, meta }) = self.idle.pop_front() {
            self.close_object(object, meta, CloseReason::PoolClosed);
        }
        if let Some(leases) = &mut self.leases {
            leases.retire_all(Retired::Close(CloseReason::PoolClosed));
        }
        self.next_lifetime_sweep = None;
    }

    /// Changes `max_size`. Growing starts creations for queued waiters;
    /// shrinking closes idle objects (least recently used first) until the
    /// size fits, and objects in use are closed when given back until it does.
    pub fn resize(&mut self, max_size: usize) -> Result<(), ConfigError> {
        Limits {
            max_size,
            ..self.limits.clone()
        }
        .validate()?;
        self.limits.max_size = max_size;
        while self.size() > max_size {
            let Some(Idle { object, meta }) = self.idle.pop_front() else {
                break;
            };
            self.close_object(object, meta, CloseReason::Shrunk);
        }
        self.start_creations();
        Ok(())
    }

    /// Closes every idle object for which `keep` says false; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&T, &ObjectMeta) -> bool) -> usize {
        self.sweep_idle(|object, meta| keep(object, meta), CloseReason::Retain)
    }

    /// Closes every idle object that `is_alive` finds dead (a health check
    /// of the idle list, so that a dead object's slot is freed before anyone
    /// asks for it); returns how many.
    pub fn evict_dead(&mut self, mut is_alive: impl FnMut(&mut T) -> bool) -> usize {
        self.sweep_idle(|object, _| is_alive(object), CloseReason::Dead)
    }

    /// Closes the idle objects `keep` refuses, keeping the others in order.
    fn sweep_idle(
        &mut self,
        mut keep: impl FnMut(&mut T, &ObjectMeta) -> bool,
        reason: CloseReason,
    ) -> usize {
        let idle = std::mem::take(&mut self.idle);
        self.next_lifetime_sweep = None;
        let mut removed = 0;
        for Idle { mut object, meta } in idle {
            if keep(&mut object, &meta) {
                self.push_idle(object, meta);
            } else {
                removed += 1;
                self.close_object(object, meta, reason);
            }
        }
        self.start_creations();
        removed
    }

    // ----- outputs -----

    /// The next thing the driver must do, oldest first.
    pub fn poll_action(&mut self) -> Option<Action<T, W>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next: the
    /// earliest idle-timeout or lifetime deadline of an idle object, or the end
    /// of a refill pause or of a refusal back-off.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle_deadline = match (self.limits.idle_timeout, self.idle.front()) {
            (Some(timeout), Some(front)) if self.idle.len() > self.limits.min_idle => {
                front.meta.last_used.checked_add(timeout)
            }
            _ => None,
        };
        [
            idle_deadline,
            self.next_lifetime_sweep,
            self.refill_paused_until,
            self.refused_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- the rules -----

    /// Whether an object is past `max_lifetime` at `now`: it is then never
    /// handed out or pooled again. (`idle_timeout` is not checked here: an
    /// idle object that is wanted is better handed out than closed; the
    /// reaper in `handle_timeout` closes the ones nobody wants.)
    fn outlived(&self, meta: &ObjectMeta, now: Instant) -> bool {
        outlived(self.limits.max_lifetime, meta, now)
    }

    /// Counts a checkout as its borrower collects it.
    fn hand_out(&mut self, mut checkout: Checkout<T>) -> Checkout<T> {
        if let (Some(key), Some(leases)) = (checkout.lease, &mut self.leases) {
            // The object's meta as it is now, not when the lease was served.
            checkout.meta = leases.collect(key);
        }
        self.counters.checkouts += 1;
        if checkout.meta.checkouts > 0 {
            self.counters.reused += 1;
        }
        checkout.meta.checkouts += 1;
        checkout
    }

    /// Places an object that is counted nowhere yet (fresh, given back or
    /// re-routed): closed if the pool is closed, it expired, or the pool is
    /// over size; else to the oldest waiter (invariant 2); else idle.
    fn put_back(&mut self, object: T, meta: ObjectMeta, now: Instant) {
        // `size()` does not count this object yet.
        let reason = if self.closed {
            Some(CloseReason::PoolClosed)
        } else if self.size() >= self.limits.max_size {
            Some(CloseReason::Shrunk)
        } else if self.outlived(&meta, now) {
            Some(CloseReason::MaxLifetime)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.close_object(object, meta, reason);
            return;
        }
        if self.waiters.waiting() == 0 {
            // Nobody waits (the common case): straight to the idle list,
            // without wrapping the object in a checkout and back.
            self.push_idle(object, meta);
            return;
        }
        let checkout = self.lend(object, meta);
        let lease = checkout.lease;
        self.serve_oldest(checkout);
        if let Some(key) = lease {
            self.serve_on(key);
        }
    }

    /// Hands out an object counted nowhere yet (idle, fresh or given back):
    /// the object itself, or in a shared pool its first lease.
    fn lend(&mut self, object: T, meta: ObjectMeta) -> Checkout<T> {
        self.in_use += 1;
        match &mut self.leases {
            None => self.checkout(object, meta),
            Some(leases) => {
                let (key, object, meta) = leases.insert(object, meta);
                Checkout {
                    object,
                    meta,
                    pool: self.id,
                    lease: Some(key),
                }
            }
        }
    }

    /// One more lease on the lent object at `key`, which has room.
    fn lease_on(&mut self, key: usize) -> Checkout<T> {
        let leases = self.leases.as_mut().expect("a lease is of a shared pool");
        let (object, meta) = leases.lease(key);
        Checkout {
            object,
            meta,
            pool: self.id,
            lease: Some(key),
        }
    }

    /// Serves the oldest waiter, who is queued, with `checkout`.
    fn serve_oldest(&mut self, checkout: Checkout<T>) {
        match self.waiters.serve_oldest(Ok(checkout)) {
            Ok(payload) => self.actions.push_back(Action::Wake(payload)),
            Err(_) => unreachable!("a waiter is queued"),
        }
    }

    /// Serves queued waiters with leases on the lent object at `key` while it
    /// has room (invariant 2).
    fn serve_on(&mut self, key: usize) {
        while self.waiters.waiting() > 0 && self.leases.as_ref().is_some_and(|l| l.has_room(key)) {
            let checkout = self.lease_on(key);
            self.serve_oldest(checkout);
        }
    }

    /// A lease on the lent object at `key` came back at `now`; `retire`, if
    /// any, retires the object first (so does `max_lifetime` while other
    /// leases are out). A still-lent object may serve the oldest waiter.
    /// With the last lease, the object leaves the table: retired (other than
    /// by the pool's close), it leaves the pool for that reason; otherwise it
    /// is placed as an exclusive pool places an object given back
    /// (`put_back`: closed if the pool is, over size or too old; else to the
    /// oldest waiter, or idle).
    fn return_lease(&mut self, key: usize, now: Instant, retire: Option<Retired>) {
        let max_lifetime = self.limits.max_lifetime;
        let leases = self.leases.as_mut().expect("a lease is of a shared pool");
        let lent = leases.get_mut(key);
        lent.meta.last_used = now;
        let expired = lent.leases > 1 && outlived(max_lifetime, &lent.meta, now);
        if let Some(why) = retire.or(expired.then_some(Retired::Close(CloseReason::MaxLifetime))) {
            leases.retire(key, why);
        }
        match leases.give_back(key) {
            None => self.serve_on(key),
            Some(Lent {
                object,
                meta,
                retired,
                ..
            }) => {
                self.in_use -= 1;
                match retired {
                    None | Some(Retired::Close(CloseReason::PoolClosed)) => {
                        self.put_back(object, meta, now)
                    }
                    Some(why) => self.leave_retired(object, meta, why),
                }
            }
        }
    }

    /// A retired object whose last lease came back leaves the pool.
    fn leave_retired(&mut self, object: T, meta: ObjectMeta, why: Retired) {
        match why {
            Retired::Close(reason) => self.close_object(object, meta, reason),
            Retired::Detached => self.counters.detached += 1,
        }
    }

    fn push_idle(&mut self, object: T, meta: ObjectMeta) {
        // A deadline past what `Instant` can hold never comes.
        let deadline = (self.limits.max_lifetime).and_then(|l| meta.created_at.checked_add(l));
        if let Some(deadline) = deadline {
            let sweep = self.next_lifetime_sweep.get_or_insert(deadline);
            *sweep = (*sweep).min(deadline);
        }
        self.idle.push_back(Idle { object, meta });
    }

    fn checkout(&self, object: T, meta: ObjectMeta) -> Checkout<T> {
        Checkout {
            object,
            meta,
            pool: self.id,
            lease: None,
        }
    }

    fn close_object(&mut self, object: T, meta: ObjectMeta, reason: CloseReason) {
        self.counters.closed += 1;
        self.actions.push_back(Action::Close {
            object,
            meta,
            reason,
        });
    }

    /// How many creations should be in flight: one per `max_leases` queued
    /// waiters (rounded up), plus what the idle list lacks of `min_idle`
    /// (unless the refill is paused).
    fn creations_wanted(&self) -> usize {
        let refill = if self.refill_paused_until.is_some() {
            0
        } else {
            self.limits.min_idle.saturating_sub(self.idle.len())
        };
        let waiting = self.waiters.waiting();
        // Spares a division on the hot path: nobody waits, or an exclusive pool.
        let covering = match self.max_leases() {
            _ if waiting == 0 => 0,
            1 => waiting,
            max_leases => waiting.div_ceil(max_leases),
        };
        covering + refill
    }

    /// Whether one more creation may and should start (invariant 3 is `!self.may_create()`).
    fn may_create(&self) -> bool {
        !self.closed
            && self.refused_until.is_none()
            && self.size() < self.limits.max_size
            && self.creating < self.limits.max_creating
            && self.creating < self.creations_wanted()
    }

    fn start_creations(&mut self) {
        // The common case, checked first: nobody waits and the idle list
        // holds `min_idle`, so no creation is wanted.
        if self.waiters.waiting() == 0 && self.idle.len() >= self.limits.min_idle {
            return;
        }
        while self.may_create() {
            self.creating += 1;
            self.counters.create_started += 1;
            self.actions
                .push_back(Action::Create(CreateTicket { pool: self.id }));
        }
    }

    /// Checks every invariant listed in the module documentation; the error
    /// names the one that broke.
    pub fn check_invariants(&self) -> Result<(), String> {
        let status = self.status();
        if status.size > self.limits.max_size && !self.idle.is_empty() {
            return Err(format!("over size and still pooling: {status:?}"));
        }
        if self.creating > self.limits.max_creating {
            return Err(format!(
                "{} creations over the cap of {}",
                self.creating, self.limits.max_creating
            ));
        }
        if status.waiting > 0 && status.idle > 0 {
            return Err(format!("waiters queued beside idle objects: {status:?}"));
        }
        if self.may_create() {
            return Err(format!("a creation could start but did not: {status:?}"));
        }
        if self.refused_until.is_some()
            && status.waiting > self.creating.saturating_mul(self.max_leases())
        {
            return Err(format!(
                "waiters no creation covers in a refusal back-off: {status:?}"
            ));
        }
        if self.closed && (status.idle > 0 || status.waiting > 0) {
            return Err(format!("closed but still holding: {status:?}"));
        }
        self.waiters.check()?;
        if let Some(leases) = &self.leases {
            leases.check()?;
            if leases.objects() != self.in_use {
                return Err(format!(
                    "{} objects lent, {} counted in use",
                    leases.objects(),
                    self.in_use
                ));
            }
            if leases.least_loaded().is_some() && (status.waiting > 0 || self.closed) {
                return Err(format!("a lent object takes leases while {status:?}"));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for Idle { meta, .. } in &self.idle {
            if !ids.insert(meta.id) {
                return Err(format!("object {} is idle twice", meta.id));
            }
            if meta.last_used < meta.created_at {
                return Err(format!("object {} used before it was created", meta.id));
            }
        }
        if let Some(lifetime) = self.limits.max_lifetime {
            let earliest = self
                .idle
                .iter()
                .filter_map(|i| i.meta.created_at.checked_add(lifetime))
                .min();
            if earliest.is_some_and(|e| self.next_lifetime_sweep.is_none_or(|at| at > e)) {
                return Err("the lifetime sweep is due later than an idle object expires".into());
            }
        }
        Ok(())
    }

    /// Bytes the machine holds for each idle object and for each waiter, not
    /// counting what `T` and `W` own on the heap.
    pub fn bytes_per_entry() -> (usize, usize) {
        (
            std::mem::size_of::<Idle<T>>(),
            Waiters::<W, Result<Checkout<T>, Failure<E>>>::bytes_per_waiter(),
        )
    }
}

/// Whether an object is past `max_lifetime` at `now`.
#[inline]
fn outlived(max_lifetime: Option<Duration>, meta: &ObjectMeta, now: Instant) -> bool {
    max_lifetime.is_some_and(|l| now.saturating_duration_since(meta.created_at) >= l)
}

#[cfg(test)]
mod tests;
