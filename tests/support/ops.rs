//! The operation interpreter shared by `tests/model.rs` and the cargo-fuzz
//! target `fuzz/fuzz_targets/pool_ops.rs`; both include this file with
//! `#[path = "..."] mod ops;`.
//!
//! An [`Op`] is one input a driver can give the sans-IO machine
//! [`PoolState`]. [`run`] plays a list of them on a `PoolState<Obj, String, u32>`
//! and, beside it, on a small reference [`Model`] written from the documented
//! behaviour with plain `Vec`/`VecDeque`/`BTreeMap` bookkeeping. After every
//! step it asserts (panicking with the step and the op on failure):
//!
//! - `check_invariants()` is `Ok`;
//! - `status()` and `counters()` equal the model's;
//! - every return value is the one the model predicts (`Ready` with *this*
//!   object, `Queued`, `Closed`, `Pending`, the served outcome, the error given
//!   back by `handle_create_failed`, the count `retain` removed, the
//!   `ConfigError` of `resize`);
//! - the actions emitted are exactly the predicted ones: the `Wake`s in order,
//!   the `Close`s in order with the object, its reason and its `ObjectMeta`,
//!   and the number of `Create`s (invariant 3, "no stall", recomputed by the
//!   model as a closed formula rather than the machine's loop);
//! - FIFO: the waiters woken in a step are the oldest ones queued before it,
//!   in queue order, and only waiters that were queued are ever woken;
//! - no object is in two places: the objects the driver holds, the ones the
//!   machine closed or that were detached, and the ones the model has idle or
//!   parked in a served waiter's slot are disjoint and together are every
//!   object ever created; no object is closed twice, and the machine never
//!   drops an object on its own (each `Obj` logs its drop);
//! - `poll_timeout()` is never later than the earliest deadline the model
//!   knows of, and after `handle_timeout(now)` it is `None` or after `now`;
//! - once closed: nothing goes idle, queued waiters get `Failure::Closed`,
//!   `acquire` answers `Closed`;
//! - a token of another pool is given back as `Foreign` and changes nothing.
//!
//! At the end [`run`] tears the pool down through the same checked steps
//! (close, finish every creation, collect every waiter, give every object
//! back), then asserts that every object created was closed exactly once or
//! detached, and was dropped exactly once.

// Each includer uses a different part of this file.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use wtpool::ConfigError;
use wtpool::machine::{
    Acquire, Action, Checkout, CloseReason, Counters, CreateTicket, Failure, Foreign, Limits,
    ObjectMeta, PoolState, REFILL_BACKOFF_MAX, REFILL_BACKOFF_MIN, Status, WaitPoll, WaiterId,
};

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// The pool's limits for one run, already normalised to valid, small values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 1..=8.
    pub max_size: usize,
    /// 1..=max_size + 1 (a cap above `max_size` is legal and never binds), or
    /// `usize::MAX`, the default of `Limits::new`: capped by `max_size` alone,
    /// whatever it is resized to.
    pub max_creating: usize,
    /// 0..=max_size.
    pub min_idle: usize,
    /// In milliseconds of the virtual clock.
    pub idle_timeout_ms: Option<u64>,
    /// In milliseconds of the virtual clock.
    pub max_lifetime_ms: Option<u64>,
}

impl Config {
    /// The machine's limits for this config.
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::new(self.max_size);
        limits.max_creating = self.max_creating;
        limits.min_idle = self.min_idle;
        limits.idle_timeout = self.idle_timeout_ms.map(Duration::from_millis);
        limits.max_lifetime = self.max_lifetime_ms.map(Duration::from_millis);
        limits
    }
}

/// Raw bytes for a [`Config`]; any value maps to a valid config.
#[derive(Arbitrary, Debug, Clone)]
pub struct RawConfig {
    max_size: u8,
    max_creating: u8,
    min_idle: u8,
    idle_timeout: Option<u8>,
    max_lifetime: Option<u8>,
}

impl From<RawConfig> for Config {
    fn from(raw: RawConfig) -> Self {
        let max_size = 1 + usize::from(raw.max_size) % 8;
        Config {
            max_size,
            max_creating: match usize::from(raw.max_creating) % (max_size + 2) {
                0 => usize::MAX,
                n => n,
            },
            min_idle: usize::from(raw.min_idle) % (max_size + 1),
            idle_timeout_ms: raw.idle_timeout.map(|t| 1 + u64::from(t) * 4),
            max_lifetime_ms: raw.max_lifetime.map(|t| 1 + u64::from(t) * 8),
        }
    }
}

/// One input. Indices pick among the tokens the driver holds at that moment
/// (modulo their number, oldest first); with none held the op does nothing.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `acquire`, with the dead flags as `is_alive`.
    Acquire,
    /// `poll_waiter` on a held waiter token.
    PollWaiter(u8),
    /// `cancel_waiter` on a held waiter token.
    CancelWaiter(u8),
    /// `release` of a held checkout, with this verdict.
    Release { index: u8, alive: bool },
    /// `detach` of a held checkout.
    Detach(u8),
    /// `handle_created` for a held ticket, with a fresh object.
    CreateOk(u8),
    /// `handle_create_failed` for a held ticket, with a fresh error.
    CreateFail(u8),
    /// Moves the virtual clock on by this many milliseconds (no input).
    Advance(u8),
    /// `handle_timeout(now)`.
    HandleTimeout,
    /// Moves the clock to `poll_timeout()` (if later), then `handle_timeout`:
    /// what a driver's timer does.
    FireTimeout,
    /// `close()`.
    Close,
    /// `resize(n % 10)`: 0 and sizes below `min_idle` must be refused.
    Resize(u8),
    /// `retain` with one of a few predicates.
    Retain(Keep),
    /// Marks an idle object dead: `is_alive` says false for it from now on.
    DeadFlag(u8),
    /// `handle_close_failed()`.
    CloseFailed,
    /// Gives a token of one pool to another.
    Foreign(ForeignOp),
}

/// The predicates [`Op::Retain`] can use.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    All,
    None,
    EvenId,
    OddId,
    /// Objects handed out at least once.
    Used,
    /// Objects never handed out.
    Unused,
}

impl Keep {
    fn keeps(self, uid: u64, checkouts: u64) -> bool {
        match self {
            Keep::All => true,
            Keep::None => false,
            Keep::EvenId => uid.is_multiple_of(2),
            Keep::OddId => uid % 2 == 1,
            Keep::Used => checkouts > 0,
            Keep::Unused => checkouts == 0,
        }
    }
}

/// Which token [`Op::Foreign`] misdirects, and which way.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignOp {
    pub kind: ForeignKind,
    /// A token of the side pool to the pool under test, or the other way.
    pub into_main: bool,
}

/// The input a misdirected token is given to.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignKind {
    Release,
    Detach,
    Poll,
    Cancel,
    Created,
    CreateFailed,
}

/// The most ops taken from one fuzz input.
pub const MAX_OPS: usize = 400;

/// Turns raw bytes into a config and ops, as the fuzz target does.
pub fn from_bytes(data: &[u8]) -> Option<(Config, Vec<Op>)> {
    let mut u = Unstructured::new(data);
    let config = Config::from(RawConfig::arbitrary(&mut u).ok()?);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Some((config, ops))
}

/// The whole fuzz target: bytes to ops, then [`run`].
pub fn run_bytes(data: &[u8]) {
    if let Some((config, ops)) = from_bytes(data) {
        run(&config, &ops);
    }
}

// ---------------------------------------------------------------------------
// The pooled object
// ---------------------------------------------------------------------------

/// A pooled object: a unique id, and a log that records its drop, so an object
/// the machine loses (drops instead of handing it back) is noticed.
#[derive(Debug)]
pub struct Obj {
    uid: u64,
    drops: Rc<RefCell<Vec<u64>>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.drops.borrow_mut().push(self.uid);
    }
}

/// Ids of objects made for the side pool or for misdirected creations; they
/// never enter the pool under test.
const FOREIGN_UID: u64 = 1 << 40;

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// Where the model says an object is. Every object ever created is in exactly
/// one place; that is what "no object in two places" means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In the idle list.
    Idle,
    /// Held by the driver (a `Checkout`).
    Out,
    /// Parked in the slot of this served waiter, not collected yet.
    Served(u32),
    /// Taken out with `detach`.
    Detached,
    /// Emitted in an `Action::Close`, for this reason.
    Closed(CloseReason),
    /// Between two places inside one step; never seen between steps.
    Limbo,
}

/// What the model knows of one object (its `ObjectMeta`, in ms).
#[derive(Debug, Clone)]
struct ModelObj {
    place: Place,
    created_at: u64,
    last_used: u64,
    checkouts: u64,
}

/// What a served waiter will find when it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Obj(u64),
    Closed,
    Create(String),
}

/// What the model says the current step must emit.
#[derive(Debug, Default)]
struct Expected {
    wakes: Vec<u32>,
    closes: Vec<(u64, CloseReason)>,
    creates: usize,
}

/// The reference model: the pool as the module docs describe it, kept with
/// obvious data structures.
#[derive(Debug)]
pub struct Model {
    config: Config,
    /// Changes with `resize`.
    max_size: usize,
    closed: bool,
    /// Every object ever created, by id (ids count up from 0 in creation order).
    objects: BTreeMap<u64, ModelObj>,
    /// Ids of the idle objects, least recently used at the front: ordered by
    /// `last_used` (ties in the order they were placed). Checkout takes from
    /// the back (most recently used); the reaper, `resize` and `close` take
    /// from the front.
    idle: VecDeque<u64>,
    /// Queued waiters, oldest first.
    queue: VecDeque<u32>,
    /// Served waiters whose outcome waits to be collected.
    served: BTreeMap<u32, Outcome>,
    /// The wake payload each live waiter currently has (see `payload`).
    payloads: BTreeMap<u32, u32>,
    /// Creations in flight (tickets the driver holds).
    creating: usize,
    next_waiter: u32,
    /// The background refill is paused until this time (after a refill failed);
    /// only `handle_timeout` lifts the pause.
    refill_paused_until: Option<u64>,
    refill_backoff: u64,
    counters: Counters,
    expect: Expected,
}

/// A waiter's wake payload: its number in the high bits, the times it was
/// re-registered by `poll_waiter`'s `update` in the low byte.
fn payload(waiter: u32, updates: u32) -> u32 {
    (waiter << 8) | (updates & 0xff)
}

fn waiter_of(payload: u32) -> u32 {
    payload >> 8
}

impl Model {
    fn new(config: &Config) -> Self {
        let mut model = Model {
            max_size: config.max_size,
            config: config.clone(),
            closed: false,
            objects: BTreeMap::new(),
            idle: VecDeque::new(),
            queue: VecDeque::new(),
            served: BTreeMap::new(),
            payloads: BTreeMap::new(),
            creating: 0,
            next_waiter: 0,
            refill_paused_until: None,
            refill_backoff: REFILL_BACKOFF_MIN.as_millis() as u64,
            counters: Counters::default(),
            expect: Expected::default(),
        };
        // A new pool starts its `min_idle` refill at once.
        model.start_wanted_creations();
        model
    }

    fn count(&self, f: impl Fn(Place) -> bool) -> usize {
        self.objects.values().filter(|o| f(o.place)).count()
    }

    /// Objects handed out, counting served-but-uncollected ones (as `Status` does).
    fn in_use(&self) -> usize {
        self.count(|p| matches!(p, Place::Out | Place::Served(_)))
    }

    fn size(&self) -> usize {
        self.idle.len() + self.in_use() + self.creating
    }

    fn status(&self) -> Status {
        Status {
            max_size: self.max_size,
            size: self.size(),
            idle: self.idle.len(),
            in_use: self.in_use(),
            leases: self.in_use(),
            creating: self.creating,
            waiting: self.queue.len(),
            closed: self.closed,
        }
    }

    fn obj(&mut self, uid: u64) -> &mut ModelObj {
        self.objects.get_mut(&uid).expect("model: unknown object")
    }

    /// Past `max_lifetime` at `now`.
    fn outlived(&self, uid: u64, now: u64) -> bool {
        let created = self.objects[&uid].created_at;
        self.config
            .max_lifetime_ms
            .is_some_and(|l| now >= created + l)
    }

    /// Idle for `idle_timeout` or longer at `now`.
    fn idled_out(&self, uid: u64, now: u64) -> bool {
        let last = self.objects[&uid].last_used;
        self.config.idle_timeout_ms.is_some_and(|t| now >= last + t)
    }

    fn close(&mut self, uid: u64, reason: CloseReason) {
        let obj = self.obj(uid);
        assert!(
            !matches!(obj.place, Place::Closed(_) | Place::Detached),
            "model: object {uid} would leave the pool twice"
        );
        obj.place = Place::Closed(reason);
        self.counters.closed += 1;
        self.expect.closes.push((uid, reason));
    }

    /// Serves the oldest queued waiter; false if nobody waits.
    fn serve_oldest(&mut self, outcome: Outcome) -> bool {
        let Some(waiter) = self.queue.pop_front() else {
            return false;
        };
        if let Outcome::Obj(uid) = outcome {
            self.obj(uid).place = Place::Served(waiter);
        }
        self.served.insert(waiter, outcome);
        self.expect.wakes.push(waiter);
        true
    }

    /// An object that is in no place (just created, given back alive, or taken
    /// back from a cancelled waiter) goes where the docs say: closed if the
    /// pool is closed, if the pool is already full without it (shrunk), or if
    /// it outlived `max_lifetime`; else to the oldest waiter; else idle.
    fn place(&mut self, uid: u64, now: u64) {
        assert_eq!(self.objects[&uid].place, Place::Limbo);
        if self.closed {
            self.close(uid, CloseReason::PoolClosed);
        } else if self.size() >= self.max_size {
            self.close(uid, CloseReason::Shrunk);
        } else if self.outlived(uid, now) {
            self.close(uid, CloseReason::MaxLifetime);
        } else if !self.serve_oldest(Outcome::Obj(uid)) {
            self.obj(uid).place = Place::Idle;
            self.push_idle(uid);
        }
    }

    /// Puts an object in the idle list: behind every object used no later
    /// than it (for one given back or created now, that is the back).
    fn push_idle(&mut self, uid: u64) {
        let last_used = self.objects[&uid].last_used;
        let at = self
            .idle
            .iter()
            .rposition(|u| self.objects[u].last_used <= last_used)
            .map_or(0, |i| i + 1);
        self.idle.insert(at, uid);
    }

    /// Invariant 3 as a formula: creations in flight must reach
    /// `min(wanted, max_creating, what capacity leaves)`, where `wanted` is one
    /// per queued waiter plus the idle objects `min_idle` lacks (none while the
    /// refill is paused). Creations already in flight are never taken back.
    fn start_wanted_creations(&mut self) {
        if self.closed {
            return;
        }
        let refill = match self.refill_paused_until {
            Some(_) => 0,
            None => self.config.min_idle.saturating_sub(self.idle.len()),
        };
        let wanted = self.queue.len() + refill;
        let room = self.max_size.saturating_sub(self.size());
        let target = wanted
            .min(self.config.max_creating)
            .min(self.creating + room);
        if target > self.creating {
            let more = target - self.creating;
            self.creating += more;
            self.counters.create_started += more as u64;
            self.expect.creates += more;
        }
    }

    fn hand_out(&mut self, uid: u64) {
        let obj = self.obj(uid);
        obj.place = Place::Out;
        obj.checkouts += 1;
        let reused = obj.checkouts > 1;
        self.counters.checkouts += 1;
        if reused {
            self.counters.reused += 1;
        }
    }

    // ----- the inputs, as the model sees them -----

    fn acquire(&mut self, now: u64, dead: &BTreeSet<u64>) -> Predicted {
        if self.closed {
            return Predicted::Closed;
        }
        // Nobody may overtake a queued waiter: with a queue, the idle list is
        // empty anyway (invariant 2) and the caller queues behind it.
        if self.queue.is_empty() {
            // Most recently used first; expired or dead ones are closed on the way.
            while let Some(uid) = self.idle.pop_back() {
                if self.outlived(uid, now) {
                    self.close(uid, CloseReason::MaxLifetime);
                } else if dead.contains(&uid) {
                    self.close(uid, CloseReason::Dead);
                } else {
                    self.hand_out(uid);
                    return Predicted::Ready(uid);
                }
            }
        }
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        self.queue.push_back(waiter);
        self.payloads.insert(waiter, payload(waiter, 0));
        Predicted::Queued(waiter)
    }

    /// `None` while still queued; else what the waiter collects.
    fn poll(&mut self, waiter: u32) -> Option<Outcome> {
        if self.queue.contains(&waiter) {
            let p = self.payloads.get_mut(&waiter).expect("live waiter");
            *p = payload(waiter, (*p & 0xff) + 1);
            return None;
        }
        let outcome = self.served.remove(&waiter).expect("model: unknown waiter");
        self.payloads.remove(&waiter);
        if let Outcome::Obj(uid) = outcome {
            self.hand_out(uid);
        }
        Some(outcome)
    }

    fn cancel(&mut self, waiter: u32, now: u64) {
        self.payloads.remove(&waiter);
        if let Some(pos) = self.queue.iter().position(|&w| w == waiter) {
            // Cancelled while queued, possibly from the middle of the queue.
            self.queue.remove(pos);
        } else if let Some(Outcome::Obj(uid)) = self.served.remove(&waiter) {
            // It had been served an object: nothing is lost, the object is
            // given back now (to the next waiter, or idle).
            let obj = self.obj(uid);
            obj.place = Place::Limbo;
            obj.last_used = now;
            self.place(uid, now);
        }
    }

    fn release(&mut self, uid: u64, now: u64, alive: bool) {
        let obj = self.obj(uid);
        assert_eq!(obj.place, Place::Out);
        obj.place = Place::Limbo;
        obj.last_used = now;
        if alive {
            self.place(uid, now);
        } else {
            self.close(uid, CloseReason::Dead);
        }
    }

    fn detach(&mut self, uid: u64) {
        assert_eq!(self.objects[&uid].place, Place::Out);
        self.obj(uid).place = Place::Detached;
        self.counters.detached += 1;
    }

    /// Returns the id the new object gets.
    fn created(&mut self, now: u64) -> u64 {
        self.creating -= 1;
        let uid = self.counters.created;
        self.counters.created += 1;
        // A success resets the refill back-off (a pause already set stays).
        self.refill_backoff = REFILL_BACKOFF_MIN.as_millis() as u64;
        self.objects.insert(
            uid,
            ModelObj {
                place: Place::Limbo,
                created_at: now,
                last_used: now,
                checkouts: 0,
            },
        );
        self.place(uid, now);
        uid
    }

    /// Returns the error if it is given back undelivered.
    fn create_failed(&mut self, error: String, now: u64) -> Option<String> {
        self.creating -= 1;
        self.counters.create_failed += 1;
        // More waiters than creations left in flight: one of them was counting
        // on this creation, and the oldest gets the error.
        if self.queue.len() > self.creating {
            self.serve_oldest(Outcome::Create(error));
            None
        } else {
            // A background refill failed: pause it, doubling the pause each time.
            self.refill_paused_until = Some(now + self.refill_backoff);
            self.refill_backoff =
                (self.refill_backoff * 2).min(REFILL_BACKOFF_MAX.as_millis() as u64);
            Some(error)
        }
    }

    fn timeout(&mut self, now: u64) {
        if self.refill_paused_until.is_some_and(|until| until <= now) {
            self.refill_paused_until = None;
        }
        // Idle timeout: close objects idle too long, least recently used
        // first, but never below `min_idle` idle objects.
        while self.idle.len() > self.config.min_idle
            && let Some(&uid) = self.idle.front()
            && self.idled_out(uid, now)
        {
            self.idle.pop_front();
            self.close(uid, CloseReason::IdleTimeout);
        }
        // Max lifetime: every idle object past it goes, whatever `min_idle` says.
        let idle = std::mem::take(&mut self.idle);
        for uid in idle {
            if self.outlived(uid, now) {
                self.close(uid, CloseReason::MaxLifetime);
            } else {
                self.idle.push_back(uid);
            }
        }
    }

    fn close_pool(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        while self.serve_oldest(Outcome::Closed) {}
        while let Some(uid) = self.idle.pop_front() {
            self.close(uid, CloseReason::PoolClosed);
        }
    }

    fn resize(&mut self, n: usize) -> Result<(), ConfigError> {
        if n == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if n < self.config.min_idle {
            return Err(ConfigError::MinIdleAboveMaxSize {
                min_idle: self.config.min_idle,
                max_size: n,
            });
        }
        self.max_size = n;
        // Shrinking closes idle objects, least recently used first, until the
        // size fits (objects in use are closed later, when given back).
        while self.size() > n {
            let Some(uid) = self.idle.pop_front() else {
                break;
            };
            self.close(uid, CloseReason::Shrunk);
        }
        Ok(())
    }

    fn retain(&mut self, keep: Keep) -> usize {
        let idle = std::mem::take(&mut self.idle);
        let mut removed = 0;
        for uid in idle {
            if keep.keeps(uid, self.objects[&uid].checkouts) {
                self.idle.push_back(uid);
            } else {
                removed += 1;
                self.close(uid, CloseReason::Retain);
            }
        }
        removed
    }

    /// The earliest time `handle_timeout` has work, as far as the model knows:
    /// `poll_timeout` must not be later than this.
    fn next_deadline(&self) -> Option<u64> {
        let mut deadlines = Vec::new();
        if let Some(t) = self.config.idle_timeout_ms
            && self.idle.len() > self.config.min_idle
        {
            // Any idle object's deadline counts, not only the front's.
            deadlines.extend(self.idle.iter().map(|u| self.objects[u].last_used + t));
        }
        if let Some(l) = self.config.max_lifetime_ms {
            deadlines.extend(self.idle.iter().map(|u| self.objects[u].created_at + l));
        }
        deadlines.extend(self.refill_paused_until);
        deadlines.into_iter().min()
    }

    /// The model's own consistency: each object in one place, and the lists
    /// agree with the places.
    fn check_self(&self) {
        for (&uid, obj) in &self.objects {
            assert_ne!(obj.place, Place::Limbo, "model: object {uid} left in limbo");
            match obj.place {
                Place::Idle => assert!(self.idle.contains(&uid)),
                Place::Served(w) => assert_eq!(self.served.get(&w), Some(&Outcome::Obj(uid))),
                _ => {}
            }
        }
        let idle: BTreeSet<u64> = self.idle.iter().copied().collect();
        assert_eq!(idle.len(), self.idle.len(), "model: an object idle twice");
        assert_eq!(idle.len(), self.count(|p| p == Place::Idle));
        assert!(self.queue.is_empty() || self.idle.is_empty());
    }
}

/// The model's prediction for `acquire`.
#[derive(Debug, PartialEq, Eq)]
enum Predicted {
    Ready(u64),
    Queued(u32),
    Closed,
}

// ---------------------------------------------------------------------------
// The driver: the machine, the tokens it handed out, and the model beside it
// ---------------------------------------------------------------------------

/// Something that happened in a run, for scenario tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `acquire` returned this idle object.
    Ready { uid: u64 },
    /// `acquire` queued this waiter.
    Queued { waiter: u32 },
    /// `acquire` answered `Closed`.
    AcquireClosed,
    /// `poll_waiter` found the waiter still queued.
    Pending { waiter: u32 },
    /// `poll_waiter` collected this outcome.
    Collected { waiter: u32, outcome: Outcome },
    /// `Action::Wake` for this waiter.
    Woken { waiter: u32 },
    /// `Action::Close` of this object.
    Closed { uid: u64, reason: CloseReason },
    /// `Action::Create`.
    CreateStarted,
    /// `handle_created` made this object.
    Created { uid: u64 },
    /// `handle_create_failed`; `delivered` if a waiter got the error.
    CreateFailed { delivered: bool },
    /// `resize` to this size, accepted or not.
    Resized { to: usize, ok: bool },
    /// `retain` removed this many.
    Retained { removed: usize },
}

/// What a run leaves for the caller to look at.
#[derive(Debug)]
pub struct Trace {
    /// Everything that happened, teardown included.
    pub events: Vec<Event>,
    /// Where the teardown's events start in `events`.
    pub teardown_from: usize,
    /// The status after the last op, before teardown.
    pub status: Status,
    /// The counters after the last op, before teardown.
    pub counters: Counters,
}

/// The side pool that supplies foreign tokens (and receives ours).
struct Side {
    pool: PoolState<Obj, String, u32>,
    checkout: Option<Checkout<Obj>>,
    waiter: Option<WaiterId>,
    ticket: Option<CreateTicket>,
}

struct Driver {
    pool: PoolState<Obj, String, u32>,
    model: Model,
    side: Side,
    base: Instant,
    /// The virtual clock, in ms since `base`.
    now: u64,
    /// Tokens the driver holds, oldest first, with the model's names for them.
    checkouts: Vec<Checkout<Obj>>,
    waiters: Vec<(u32, WaiterId)>,
    tickets: Vec<CreateTicket>,
    /// Objects that `is_alive` calls dead.
    dead: BTreeSet<u64>,
    /// Objects closed or detached, kept until the end so their drop is ours.
    graveyard: Vec<Obj>,
    /// Ids seen in an `Action::Close`.
    closed_ids: BTreeSet<u64>,
    detached_ids: BTreeSet<u64>,
    drops: Rc<RefCell<Vec<u64>>>,
    next_error: u64,
    next_foreign: u64,
    events: Vec<Event>,
    /// For failure messages.
    step: usize,
    op: Option<Op>,
}

impl Driver {
    fn new(config: &Config) -> Self {
        let base = Instant::now();
        let drops = Rc::new(RefCell::new(Vec::new()));
        let pool = PoolState::new(config.limits()).expect("the config is valid");
        let mut driver = Driver {
            pool,
            model: Model::new(config),
            side: Side::new(base, &drops),
            base,
            now: 0,
            checkouts: Vec::new(),
            waiters: Vec::new(),
            tickets: Vec::new(),
            dead: BTreeSet::new(),
            graveyard: Vec::new(),
            closed_ids: BTreeSet::new(),
            detached_ids: BTreeSet::new(),
            drops,
            next_error: 0,
            next_foreign: 1,
            events: Vec::new(),
            step: 0,
            op: None,
        };
        driver.after_step(&VecDeque::new(), false);
        driver
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn instant(&self) -> Instant {
        self.at(self.now)
    }

    fn ms(&self, t: Instant) -> u64 {
        t.duration_since(self.base).as_millis() as u64
    }

    fn obj(&self, uid: u64) -> Obj {
        Obj {
            uid,
            drops: self.drops.clone(),
        }
    }

    fn foreign_obj(&mut self) -> Obj {
        self.next_foreign += 1;
        self.obj(FOREIGN_UID + self.next_foreign)
    }

    /// A failure message with the step and op, for `assert!`s.
    fn at_step(&self) -> String {
        format!("step {} ({:?}) at t={}ms", self.step, self.op, self.now)
    }

    /// The `ObjectMeta` the model expects for `uid`.
    fn expected_meta(&self, uid: u64) -> ObjectMeta {
        let obj = &self.model.objects[&uid];
        ObjectMeta {
            id: uid,
            created_at: self.at(obj.created_at),
            last_used: self.at(obj.last_used),
            checkouts: obj.checkouts,
        }
    }

    fn check_checkout(&self, checkout: &Checkout<Obj>, uid: u64) {
        assert_eq!(
            checkout.object().uid,
            uid,
            "{}: wrong object",
            self.at_step()
        );
        assert_eq!(
            *checkout.meta(),
            self.expected_meta(uid),
            "{}: wrong meta for object {uid}",
            self.at_step()
        );
    }

    fn apply(&mut self, op: Op) {
        self.step += 1;
        self.op = Some(op);
        // The queue before the step, for the FIFO check.
        let queue_before = self.model.queue.clone();
        let mut timed_out = false;
        let now = self.instant();
        match op {
            Op::Acquire => self.acquire(),
            Op::PollWaiter(i) => self.poll(i),
            Op::CancelWaiter(i) => {
                if self.waiters.is_empty() {
                    return self.skip();
                }
                let (w, id) = self.waiters.remove(usize::from(i) % self.waiters.len());
                self.model.cancel(w, self.now);
                self.pool.cancel_waiter(id, now).expect("our waiter");
            }
            Op::Release { index, alive } => {
                if self.checkouts.is_empty() {
                    return self.skip();
                }
                let c = self
                    .checkouts
                    .remove(usize::from(index) % self.checkouts.len());
                self.model.release(c.object().uid, self.now, alive);
                self.pool.release(c, now, alive).expect("our checkout");
            }
            Op::Detach(i) => {
                if self.checkouts.is_empty() {
                    return self.skip();
                }
                let c = self.checkouts.remove(usize::from(i) % self.checkouts.len());
                let uid = c.object().uid;
                self.model.detach(uid);
                let obj = self.pool.detach(c).expect("our checkout");
                assert_eq!(
                    obj.uid,
                    uid,
                    "{}: detach gave another object",
                    self.at_step()
                );
                self.detached_ids.insert(uid);
                self.graveyard.push(obj);
            }
            Op::CreateOk(i) => {
                if self.tickets.is_empty() {
                    return self.skip();
                }
                let t = self.tickets.remove(usize::from(i) % self.tickets.len());
                let uid = self.model.created(self.now);
                self.events.push(Event::Created { uid });
                let obj = self.obj(uid);
                self.pool.handle_created(t, obj, now).expect("our ticket");
            }
            Op::CreateFail(i) => {
                if self.tickets.is_empty() {
                    return self.skip();
                }
                let t = self.tickets.remove(usize::from(i) % self.tickets.len());
                self.next_error += 1;
                let error = format!("create failed #{}", self.next_error);
                let predicted = self.model.create_failed(error.clone(), self.now);
                let given_back = self
                    .pool
                    .handle_create_failed(t, error, now)
                    .expect("our ticket");
                assert_eq!(
                    given_back,
                    predicted,
                    "{}: the error should be {}",
                    self.at_step(),
                    if predicted.is_some() {
                        "given back (no waiter counted on it)"
                    } else {
                        "delivered to the oldest waiter"
                    }
                );
                self.events.push(Event::CreateFailed {
                    delivered: given_back.is_none(),
                });
            }
            Op::Advance(ms) => self.now += u64::from(ms),
            Op::HandleTimeout => {
                self.model.timeout(self.now);
                self.pool.handle_timeout(now);
                timed_out = true;
            }
            Op::FireTimeout => {
                if let Some(at) = self.pool.poll_timeout()
                    && at > now
                {
                    self.now = self.ms(at);
                }
                self.model.timeout(self.now);
                self.pool.handle_timeout(self.instant());
                timed_out = true;
            }
            Op::Close => {
                self.model.close_pool();
                self.pool.close();
            }
            Op::Resize(n) => self.resize(usize::from(n) % 10),
            Op::Retain(keep) => self.retain(keep),
            Op::DeadFlag(i) => {
                if self.model.idle.is_empty() {
                    return self.skip();
                }
                let uid = self.model.idle[usize::from(i) % self.model.idle.len()];
                self.dead.insert(uid);
            }
            Op::CloseFailed => {
                self.model.counters.close_failed += 1;
                self.pool.handle_close_failed();
            }
            Op::Foreign(f) => self.foreign(f),
        }
        self.model.start_wanted_creations();
        self.after_step(&queue_before, timed_out);
    }

    /// An op with nothing to act on still gets the full check.
    fn skip(&mut self) {
        let queue = self.model.queue.clone();
        self.after_step(&queue, false);
    }

    fn acquire(&mut self) {
        let now = self.instant();
        let idle_before: BTreeSet<u64> = self.model.idle.iter().copied().collect();
        let waiter = self.model.next_waiter;
        let predicted = self.model.acquire(self.now, &self.dead);
        let mut asked = Vec::new();
        let dead = &self.dead;
        let got = self.pool.acquire(
            now,
            |o| {
                asked.push(o.uid);
                !dead.contains(&o.uid)
            },
            || payload(waiter, 0),
        );
        // `is_alive` is asked only about idle objects, each at most once.
        let asked_set: BTreeSet<u64> = asked.iter().copied().collect();
        assert_eq!(
            asked_set.len(),
            asked.len(),
            "{}: asked twice",
            self.at_step()
        );
        assert!(
            asked_set.is_subset(&idle_before),
            "{}: is_alive asked about non-idle objects {asked:?}",
            self.at_step()
        );
        match (predicted, got) {
            (Predicted::Ready(uid), Acquire::Ready(c)) => {
                self.check_checkout(&c, uid);
                self.checkouts.push(c);
                self.events.push(Event::Ready { uid });
            }
            (Predicted::Queued(w), Acquire::Queued(id)) => {
                self.waiters.push((w, id));
                self.events.push(Event::Queued { waiter: w });
            }
            (Predicted::Closed, Acquire::Closed) => self.events.push(Event::AcquireClosed),
            (predicted, got) => panic!(
                "{}: acquire returned {got:?}, the model predicted {predicted:?}",
                self.at_step()
            ),
        }
    }

    fn poll(&mut self, i: u8) {
        if self.waiters.is_empty() {
            return self.skip();
        }
        let index = usize::from(i) % self.waiters.len();
        let (w, id) = self.waiters.remove(index);
        let expected_payload = self.model.payloads[&w];
        let predicted = self.model.poll(w);
        let mut updated = None;
        let got = self
            .pool
            .poll_waiter(id, |p| {
                updated = Some(*p);
                // Re-register with a new payload: later wakes must carry it.
                *p = payload(w, (*p & 0xff) + 1);
            })
            .expect("our waiter");
        match (predicted, got) {
            (None, WaitPoll::Pending(id)) => {
                assert_eq!(
                    updated,
                    Some(expected_payload),
                    "{}: update must see the waiter's payload",
                    self.at_step()
                );
                self.waiters.insert(index, (w, id));
                self.events.push(Event::Pending { waiter: w });
            }
            (Some(outcome), WaitPoll::Ready(result)) => {
                assert_eq!(
                    updated,
                    None,
                    "{}: update on a served waiter",
                    self.at_step()
                );
                match (&outcome, result) {
                    (Outcome::Obj(uid), Ok(c)) => {
                        self.check_checkout(&c, *uid);
                        self.checkouts.push(c);
                    }
                    (Outcome::Closed, Err(Failure::Closed)) => {}
                    (Outcome::Create(e), Err(Failure::Create(got))) if *e == got => {}
                    (outcome, result) => panic!(
                        "{}: waiter {w} collected {result:?}, the model predicted {outcome:?}",
                        self.at_step()
                    ),
                }
                self.events.push(Event::Collected { waiter: w, outcome });
            }
            (predicted, got) => panic!(
                "{}: poll_waiter({w}) returned {got:?}, the model predicted {predicted:?} \
                 (None = still queued)",
                self.at_step()
            ),
        }
    }

    fn resize(&mut self, n: usize) {
        let status = self.pool.status();
        let counters = self.pool.counters();
        let limits = self.pool.limits().clone();
        let predicted = self.model.resize(n);
        let got = self.pool.resize(n);
        assert_eq!(got, predicted, "{}: resize({n})", self.at_step());
        if got.is_err() {
            // A refused resize changes nothing at all (no actions either:
            // the model expects none, checked after the step).
            assert_eq!(self.pool.status(), status, "{}", self.at_step());
            assert_eq!(self.pool.counters(), counters, "{}", self.at_step());
            assert_eq!(*self.pool.limits(), limits, "{}", self.at_step());
        } else {
            assert_eq!(self.pool.limits().max_size, n, "{}", self.at_step());
        }
        self.events.push(Event::Resized {
            to: n,
            ok: got.is_ok(),
        });
    }

    fn retain(&mut self, keep: Keep) {
        let idle_order: Vec<u64> = self.model.idle.iter().copied().collect();
        let metas: BTreeMap<u64, ObjectMeta> = idle_order
            .iter()
            .map(|&u| (u, self.expected_meta(u)))
            .collect();
        let predicted = self.model.retain(keep);
        let mut asked = Vec::new();
        let removed = self.pool.retain(|o, meta| {
            asked.push((o.uid, *meta));
            keep.keeps(o.uid, meta.checkouts)
        });
        // The predicate sees every idle object once, oldest first, with its meta.
        let asked_ids: Vec<u64> = asked.iter().map(|(u, _)| *u).collect();
        assert_eq!(asked_ids, idle_order, "{}: retain's visits", self.at_step());
        for (uid, meta) in &asked {
            assert_eq!(
                Some(meta),
                metas.get(uid),
                "{}: meta of {uid}",
                self.at_step()
            );
        }
        assert_eq!(removed, predicted, "{}: retain's count", self.at_step());
        self.events.push(Event::Retained { removed });
    }

    fn foreign(&mut self, f: ForeignOp) {
        let now = self.instant();
        if f.into_main {
            // A token of the side pool given to the pool under test comes back
            // unused; the model expects no change at all.
            let obj = self.foreign_obj();
            let side = &mut self.side;
            let pool = &mut self.pool;
            match f.kind {
                ForeignKind::Release => {
                    let c = side.checkout.take().expect("side checkout");
                    let Err(Foreign(c)) = pool.release(c, now, true) else {
                        panic!("release accepted a foreign checkout");
                    };
                    side.checkout = Some(c);
                }
                ForeignKind::Detach => {
                    let c = side.checkout.take().expect("side checkout");
                    let Err(Foreign(c)) = pool.detach(c) else {
                        panic!("detach accepted a foreign checkout");
                    };
                    side.checkout = Some(c);
                }
                ForeignKind::Poll => {
                    let w = side.waiter.take().expect("side waiter");
                    let Err(Foreign(w)) = pool.poll_waiter(w, |_| panic!("foreign update")) else {
                        panic!("poll_waiter accepted a foreign waiter");
                    };
                    side.waiter = Some(w);
                }
                ForeignKind::Cancel => {
                    let w = side.waiter.take().expect("side waiter");
                    let Err(Foreign(w)) = pool.cancel_waiter(w, now) else {
                        panic!("cancel_waiter accepted a foreign waiter");
                    };
                    side.waiter = Some(w);
                }
                ForeignKind::Created => {
                    let t = side.ticket.take().expect("side ticket");
                    let Err(Foreign((t, obj))) = pool.handle_created(t, obj, now) else {
                        panic!("handle_created accepted a foreign ticket");
                    };
                    assert!(obj.uid > FOREIGN_UID, "the object given back is ours");
                    side.ticket = Some(t);
                }
                ForeignKind::CreateFailed => {
                    let t = side.ticket.take().expect("side ticket");
                    let Err(Foreign(t)) = pool.handle_create_failed(t, "x".into(), now) else {
                        panic!("handle_create_failed accepted a foreign ticket");
                    };
                    side.ticket = Some(t);
                }
            }
        } else {
            // One of our tokens given to the side pool comes back unused, and
            // the side pool does not change.
            let here = self.at_step();
            let before = (self.side.pool.status(), self.side.pool.counters());
            let obj = self.foreign_obj();
            let side = &mut self.side.pool;
            match f.kind {
                ForeignKind::Release | ForeignKind::Detach if !self.checkouts.is_empty() => {
                    let c = self.checkouts.remove(0);
                    let c = match f.kind {
                        ForeignKind::Release => side.release(c, now, false).err(),
                        _ => side.detach(c).err(),
                    }
                    .expect("the side pool refused our checkout")
                    .0;
                    self.checkouts.insert(0, c);
                }
                ForeignKind::Poll | ForeignKind::Cancel if !self.waiters.is_empty() => {
                    let (w, id) = self.waiters.remove(0);
                    let id = match f.kind {
                        ForeignKind::Poll => side.poll_waiter(id, |_| panic!("update")).err(),
                        _ => side.cancel_waiter(id, now).err(),
                    }
                    .expect("the side pool refused our waiter")
                    .0;
                    self.waiters.insert(0, (w, id));
                }
                ForeignKind::Created if !self.tickets.is_empty() => {
                    let t = self.tickets.remove(0);
                    let Err(Foreign((t, _obj))) = side.handle_created(t, obj, now) else {
                        panic!("the side pool accepted our ticket");
                    };
                    self.tickets.insert(0, t);
                }
                ForeignKind::CreateFailed if !self.tickets.is_empty() => {
                    let t = self.tickets.remove(0);
                    let Err(Foreign(t)) = side.handle_create_failed(t, "x".into(), now) else {
                        panic!("the side pool accepted our ticket");
                    };
                    self.tickets.insert(0, t);
                }
                _ => {}
            }
            assert!(side.poll_action().is_none(), "{here}");
            assert_eq!((side.status(), side.counters()), before, "{here}");
        }
    }

    /// Drains the actions and checks everything listed in the module docs.
    fn after_step(&mut self, queue_before: &VecDeque<u32>, timed_out: bool) {
        let expect = std::mem::take(&mut self.model.expect);
        let mut wakes = Vec::new();
        let mut closes = Vec::new();
        let mut creates = 0;
        while let Some(action) = self.pool.poll_action() {
            match action {
                Action::Wake(p) => {
                    let w = waiter_of(p);
                    // The payload is the one the waiter registered last.
                    assert_eq!(
                        self.model.payloads.get(&w),
                        Some(&p),
                        "{}: Wake({p:#x}) for waiter {w}: not its current payload",
                        self.at_step()
                    );
                    wakes.push(w);
                    self.events.push(Event::Woken { waiter: w });
                }
                Action::Create(t) => {
                    creates += 1;
                    self.tickets.push(t);
                    self.events.push(Event::CreateStarted);
                }
                Action::Close {
                    object,
                    meta,
                    reason,
                } => {
                    let uid = object.uid;
                    assert!(
                        self.closed_ids.insert(uid),
                        "{}: object {uid} closed twice",
                        self.at_step()
                    );
                    assert!(
                        self.model.objects.contains_key(&uid),
                        "{}: closed an object never created: {uid}",
                        self.at_step()
                    );
                    assert_eq!(
                        meta,
                        self.expected_meta(uid),
                        "{}: meta of closed object {uid}",
                        self.at_step()
                    );
                    closes.push((uid, reason));
                    self.events.push(Event::Closed { uid, reason });
                    self.graveyard.push(object);
                }
            }
        }
        let here = self.at_step();

        // FIFO, independent of the model: the waiters woken are the oldest
        // queued before the step, in order (so each was waiting, and each was
        // the oldest one left when it was served).
        assert!(
            wakes.len() <= queue_before.len()
                && wakes.iter().zip(queue_before).all(|(a, b)| a == b),
            "{here}: woke {wakes:?} but the queue was {queue_before:?}"
        );
        // The exact actions the model predicts.
        assert_eq!(wakes, expect.wakes, "{here}: Wake actions");
        assert_eq!(closes, expect.closes, "{here}: Close actions (id, reason)");
        assert_eq!(creates, expect.creates, "{here}: Create actions");

        // The machine's own invariants, then its occupancy and totals.
        if let Err(e) = self.pool.check_invariants() {
            panic!("{here}: check_invariants: {e}");
        }
        let status = self.pool.status();
        assert_eq!(
            status,
            self.model.status(),
            "{here}: status (left: machine)"
        );
        assert_eq!(
            self.pool.counters(),
            self.model.counters,
            "{here}: counters (left: machine)"
        );
        if status.closed {
            assert_eq!((status.idle, status.waiting), (0, 0), "{here}: closed");
        }

        // Timers: never late; and after `handle_timeout(now)` no deadline is left at or before `now`.
        let deadline = self.pool.poll_timeout();
        if let Some(d) = self.model.next_deadline() {
            assert!(
                deadline.is_some_and(|t| t <= self.at(d)),
                "{here}: poll_timeout is {:?}, later than the deadline at {d}ms",
                deadline.map(|t| self.ms(t))
            );
        }
        if timed_out {
            assert!(
                deadline.is_none_or(|t| t > self.instant()),
                "{here}: after handle_timeout, poll_timeout is still {:?}",
                deadline.map(|t| self.ms(t))
            );
        }

        // No object in two places, none lost: the driver's holdings agree
        // with the model's places, and together cover every object created.
        self.model.check_self();
        assert_eq!(self.tickets.len(), self.model.creating, "{here}: tickets");
        let held: Vec<u64> = self.checkouts.iter().map(|c| c.object().uid).collect();
        let held_set: BTreeSet<u64> = held.iter().copied().collect();
        assert_eq!(
            held_set.len(),
            held.len(),
            "{here}: an object checked out twice"
        );
        let places = |f: fn(&Place) -> bool| -> BTreeSet<u64> {
            self.model
                .objects
                .iter()
                .filter(|(_, o)| f(&o.place))
                .map(|(&u, _)| u)
                .collect()
        };
        assert_eq!(held_set, places(|p| *p == Place::Out), "{here}: held");
        assert_eq!(
            self.closed_ids,
            places(|p| matches!(p, Place::Closed(_))),
            "{here}: closed"
        );
        assert_eq!(
            self.detached_ids,
            places(|p| *p == Place::Detached),
            "{here}: detached"
        );
        let parked = places(|p| matches!(p, Place::Idle | Place::Served(_)));
        let total = held_set.len() + self.closed_ids.len() + self.detached_ids.len() + parked.len();
        assert_eq!(total as u64, self.model.counters.created, "{here}: objects");
        let waiters: BTreeSet<u32> = self.waiters.iter().map(|(w, _)| *w).collect();
        let live: BTreeSet<u32> = self.model.payloads.keys().copied().collect();
        assert_eq!(waiters, live, "{here}: waiter tokens");
        let drops: Vec<u64> = self
            .drops
            .borrow()
            .iter()
            .copied()
            .filter(|&u| u < FOREIGN_UID)
            .collect();
        assert!(drops.is_empty(), "{here}: the machine dropped {drops:?}");
    }

    /// Takes the pool down through checked steps: close, finish every
    /// creation, collect every waiter, give every object back.
    fn teardown(&mut self) {
        self.apply(Op::Close);
        while !self.tickets.is_empty() {
            self.apply(Op::CreateOk(0));
        }
        while !self.waiters.is_empty() {
            self.apply(Op::PollWaiter(0));
        }
        while !self.checkouts.is_empty() {
            self.apply(Op::Release {
                index: 0,
                alive: true,
            });
        }
        let status = self.pool.status();
        assert_eq!(
            (status.size, status.idle, status.in_use, status.creating),
            (0, 0, 0, 0),
            "after teardown: {status:?}"
        );
        // Every object created left exactly once: closed or detached.
        let created = self.model.counters.created;
        let gone: BTreeSet<u64> = self.closed_ids.union(&self.detached_ids).copied().collect();
        assert_eq!(gone, (0..created).collect(), "after teardown");
        assert!(self.closed_ids.is_disjoint(&self.detached_ids));
    }
}

impl Side {
    /// A side pool holding one checkout, one queued waiter and one ticket.
    fn new(now: Instant, drops: &Rc<RefCell<Vec<u64>>>) -> Self {
        let mut pool = PoolState::new(Limits::new(2)).expect("valid");
        let Acquire::Queued(first) = pool.acquire(now, |_| true, || 0) else {
            panic!("an empty pool queues");
        };
        let Some(Action::Create(ticket)) = pool.poll_action() else {
            panic!("a queued waiter starts a creation");
        };
        let obj = Obj {
            uid: FOREIGN_UID,
            drops: drops.clone(),
        };
        pool.handle_created(ticket, obj, now).expect("own ticket");
        assert!(matches!(pool.poll_action(), Some(Action::Wake(0))));
        let Ok(WaitPoll::Ready(Ok(checkout))) = pool.poll_waiter(first, |_| ()) else {
            panic!("the waiter was served");
        };
        let Acquire::Queued(waiter) = pool.acquire(now, |_| true, || 1) else {
            panic!("nothing idle");
        };
        let Some(Action::Create(ticket)) = pool.poll_action() else {
            panic!("a second creation");
        };
        assert!(pool.poll_action().is_none());
        Side {
            pool,
            checkout: Some(checkout),
            waiter: Some(waiter),
            ticket: Some(ticket),
        }
    }
}

/// Plays `ops` on a fresh machine and on the model, checking every step (see
/// the module docs), then tears the pool down and checks that every object
/// left exactly once and was dropped exactly once.
pub fn run(config: &Config, ops: &[Op]) -> Trace {
    let mut driver = Driver::new(config);
    for &op in ops {
        driver.apply(op);
    }
    let status = driver.pool.status();
    let counters = driver.pool.counters();
    let teardown_from = driver.events.len();
    driver.teardown();

    let Driver {
        pool,
        side,
        graveyard,
        drops,
        model,
        events,
        checkouts,
        ..
    } = driver;
    assert!(checkouts.is_empty());
    drop(pool);
    drop(side);
    assert!(
        drops.borrow().iter().all(|&u| u >= FOREIGN_UID),
        "dropping the emptied pool dropped pooled objects: {:?}",
        drops.borrow()
    );
    drop(graveyard);
    let mut dropped: Vec<u64> = drops
        .borrow()
        .iter()
        .copied()
        .filter(|&u| u < FOREIGN_UID)
        .collect();
    dropped.sort_unstable();
    assert_eq!(
        dropped,
        (0..model.counters.created).collect::<Vec<_>>(),
        "every object is dropped exactly once"
    );
    Trace {
        events,
        teardown_from,
        status,
        counters,
    }
}
