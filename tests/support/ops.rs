//! The operation interpreter shared by `tests/model.rs` and the cargo-fuzz
//! target `fuzz/fuzz_targets/pool_ops.rs`; both include this file with
//! `#[path = "..."] mod ops;`.
//!
//! An [`Op`] is one input a driver can give the sans-IO machine
//! [`PoolState`]. [`run`] plays a list of them on a `PoolState<Obj, String, u32>`
//! and, beside it, on a small reference [`Model`] written from the documented
//! behaviour with plain `Vec`/`VecDeque`/`BTreeMap` bookkeeping. The pool is
//! exclusive (`PoolState::new`) or shared with 1 to 4 leases per object
//! (`PoolState::shared`, see [`Config::max_leases`]). After every step it
//! asserts (panicking with the step and the op on failure):
//!
//! - `check_invariants()` is `Ok`;
//! - `status()` (`leases` included) and `counters()` equal the model's;
//! - every return value is the one the model predicts (`Ready` with *this*
//!   object and this `ObjectMeta`, `Queued`, `Closed`, `Refused` with its
//!   `until`, `Pending`, the served outcome, the error given back by
//!   `handle_create_failed` and `handle_create_refused`, the count `retain`
//!   removed, the `ConfigError` of `resize`);
//! - `is_alive` is asked about exactly the objects the model expects, in
//!   order: the unexpired idle ones, most recently used first, then (shared
//!   pool) the unexpired lent ones with room, least loaded first;
//! - the actions emitted are exactly the predicted ones: the `Wake`s in order,
//!   the `Close`s in order with the object, its reason and its `ObjectMeta`,
//!   and the number of `Create`s (invariant 3, "no stall", recomputed by the
//!   model as a closed formula rather than the machine's loop);
//! - FIFO: the waiters woken in a step are the oldest ones queued before it,
//!   in queue order, and only waiters that were queued are ever woken;
//! - no object is in two places: the objects the driver holds, the ones the
//!   machine closed or that were detached, and the ones the model has idle,
//!   parked in a served waiter's slot or lent are disjoint and together are
//!   every object ever created; no object is closed twice, and the machine
//!   never drops an object on its own (each `Obj` logs its drop), but a
//!   detached one in a shared pool;
//! - `poll_timeout()` is never later than the earliest deadline the model
//!   knows of, and after `handle_timeout(now)` it is `None` or after `now`;
//! - once closed: nothing goes idle, queued waiters get `Failure::Closed`,
//!   `acquire` answers `Closed`;
//! - a token of another pool is given back as `Foreign` and changes nothing;
//! - a served waiter's checkout that `poll_waiter` collected and
//!   `release_uncollected` gave back ends as a `cancel_waiter` before
//!   collecting: the object (or lease) passes on or idles, and the
//!   collection is not counted (`checkouts`, `reused`, the object's meta).
//!
//! Refusals: `handle_create_refused` starts a back-off (the configured
//! pause, doubled by each refusal up to `REFUSAL_BACKOFF_MAX` or the
//! configured pause if longer, reset by a creation that succeeds). The
//! model predicts:
//!
//! - which waiters a failed or refused creation fails: the oldest ones the
//!   creations left in flight do not cover (`max_leases` each), the first
//!   with `Failure::Create(e)` and, during a back-off, every other one with
//!   `Failure::Refused { until }`, `until` exact (no back-off: only the first);
//! - `Acquire::Refused { until }`, exact, for a caller that finds nothing
//!   ready during a back-off (it is not queued and takes no waiter number);
//! - that no creation starts during a back-off, for waiters or the
//!   `min_idle` refill, and that a refused creation no waiter took does not
//!   pause the refill;
//! - the end of a back-off: by `handle_timeout` at or after `until`, by an
//!   `acquire` at or after it that finds nothing ready (it queues, and its
//!   creation starts), or by a success; `poll_timeout` is no later than
//!   `until`; and `Counters::refused` (counted in `create_failed` too).
//!
//! In a shared pool the model keeps a lease table: for each lent object, the
//! leases the driver holds, the served waiters holding one, whether it is
//! retired (and why), and its key in the machine's slab (which reuses the
//! most recently freed key first). From it, besides the above:
//!
//! - a borrower gets an idle object first, else *the* lent object the model
//!   predicts: the fewest leases among the live, unretired ones with room,
//!   ties to the lowest key; a new or freed object serves up to `max_leases`
//!   of the oldest waiters, a lease given back on an unretired object the
//!   oldest one; `n` waiters start `ceil(n / max_leases)` creations, and a
//!   failed creation fails a waiter only if `waiting > creating * max_leases`;
//! - the checkouts the driver holds, per object, are the leases the model
//!   says it holds (never more than `max_leases` on one object, none on a
//!   retired one), each `is_shared()` and holding a clone, not the object;
//! - a retired object (dead, outlived, closed pool) is closed with the
//!   right reason when its last lease comes back, and never before; one
//!   detached is then dropped by the machine and counted as detached, never
//!   closed (a detach wins over an earlier retirement, as in an exclusive
//!   pool a detached object is never closed);
//! - the machine clones exactly one handle per lease taken, and the handles
//!   alive are the leases out plus the handles detached.
//!
//! At the end [`run`] tears the pool down through the same checked steps
//! (close, finish every creation, collect every waiter, give every object
//! back), then asserts that every object created was closed exactly once or
//! detached, and was dropped exactly once, and every handle too.

// Each includer uses a different part of this file.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use wtpool::ConfigError;
use wtpool::machine::{
    Acquire, Action, Checkout, CloseReason, Counters, CreateTicket, Failure, Foreign, Limits,
    ObjectMeta, PoolState, REFILL_BACKOFF_MAX, REFILL_BACKOFF_MIN, REFUSAL_BACKOFF_MAX, Status,
    WaitPoll, WaiterId,
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
    /// `None`: an exclusive pool (`PoolState::new`), one borrower per object.
    /// `Some(k)`, 1..=4: a shared pool (`PoolState::shared(limits, k)`), up to
    /// `k` leases per object; `Some(1)` must behave as an exclusive pool
    /// apart from `Checkout::is_shared`.
    pub max_leases: Option<usize>,
    /// The first pause after a refused creation, in milliseconds of the
    /// virtual clock; `None` keeps the default of `Limits::new` (the bytes
    /// of a fuzz input always do).
    pub refusal_backoff_ms: Option<u64>,
}

impl Config {
    /// The machine's limits for this config.
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::new(self.max_size);
        limits.max_creating = self.max_creating;
        limits.min_idle = self.min_idle;
        limits.idle_timeout = self.idle_timeout_ms.map(Duration::from_millis);
        limits.max_lifetime = self.max_lifetime_ms.map(Duration::from_millis);
        if let Some(ms) = self.refusal_backoff_ms {
            limits.refusal_backoff = Duration::from_millis(ms);
        }
        limits
    }

    /// The first pause after a refused creation, in ms.
    pub fn first_refusal_backoff(&self) -> u64 {
        self.limits().refusal_backoff.as_millis() as u64
    }

    /// Most leases on one object: 1 in an exclusive pool.
    pub fn leases_per_object(&self) -> usize {
        self.max_leases.unwrap_or(1)
    }

    /// Whether the pool is built with `PoolState::shared`.
    pub fn is_shared(&self) -> bool {
        self.max_leases.is_some()
    }

    /// A fresh machine for this config.
    fn pool(&self) -> PoolState<Obj, String, u32> {
        match self.max_leases {
            None => PoolState::new(self.limits()),
            Some(k) => PoolState::shared(self.limits(), k),
        }
        .expect("the config is valid")
    }
}

/// Raw bytes for a [`Config`]; any value maps to a valid config.
#[derive(Arbitrary, Debug, Clone)]
pub struct RawConfig {
    /// The low 3 bits give `max_size`; the high 5 the kind of pool (kept in
    /// this byte so that inputs written before shared pools still decode to
    /// the same limits and ops).
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
            // A third exclusive, a sixth each shared with 1 to 4 leases.
            max_leases: match (raw.max_size >> 3) % 6 {
                0 | 1 => None,
                n => Some(usize::from(n) - 1),
            },
            refusal_backoff_ms: None,
        }
    }
}

/// One input. Indices pick among the tokens the driver holds at that moment
/// (modulo their number, oldest first); with none held the op does nothing.
///
/// Decoded from bytes by the hand-written [`Arbitrary`] impl below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `acquire`, with the dead flags as `is_alive`.
    Acquire,
    /// `poll_waiter` on a held waiter token.
    PollWaiter(u8),
    /// `cancel_waiter` on a held waiter token.
    CancelWaiter(u8),
    /// On a held waiter token served an object: `poll_waiter` collects its
    /// checkout, then `release_uncollected` gives it back, as the async pool
    /// does for a waiter that leaves after its outcome was collected for it.
    /// The model predicts a `cancel_waiter` of the waiter. A waiter still
    /// queued, or served a failure, is cancelled as by `CancelWaiter`.
    ReleaseUncollected(u8),
    /// `release` of a held checkout, with this verdict.
    Release { index: u8, alive: bool },
    /// `detach` of a held checkout.
    Detach(u8),
    /// `handle_created` for a held ticket, with a fresh object.
    CreateOk(u8),
    /// `handle_create_failed` for a held ticket, with a fresh error.
    CreateFail(u8),
    /// `handle_create_refused` for a held ticket, with a fresh error.
    CreateRefused(u8),
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
    /// Marks an idle or lent object dead: `is_alive` says false for it from
    /// now on.
    DeadFlag(u8),
    /// `handle_close_failed()`.
    CloseFailed,
    /// Gives a token of one pool to another.
    Foreign(ForeignOp),
}

/// The bytes of one [`Op`]: a `u32` whose top 4 bits pick one of 16 codes,
/// then the op's fields. The codes are those `#[derive(Arbitrary)]` gave
/// when `Op` had 16 variants (the variants in order, `CreateRefused` left
/// out), so that the inputs saved then decode to the same ops; a derive
/// over more variants would renumber every code. The ops added since share
/// a code, told apart by the next bit of the `u32`; each reads what the op
/// it shares with reads, so the ops after it decode the same either way:
/// `CreateRefused` shares code 6 with `CreateFail` (a saved `CreateFail`
/// with that bit set now refuses the same ticket), and `ReleaseUncollected`
/// code 2 with `CancelWaiter` (a saved `CancelWaiter` with that bit set now
/// collects and gives back, which the model predicts as that cancel).
impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let code = u32::arbitrary(u)?;
        Ok(match code >> 28 {
            0 => Op::Acquire,
            1 => Op::PollWaiter(u.arbitrary()?),
            2 if code & (1 << 27) == 0 => Op::CancelWaiter(u.arbitrary()?),
            2 => Op::ReleaseUncollected(u.arbitrary()?),
            3 => Op::Release {
                index: u.arbitrary()?,
                alive: u.arbitrary()?,
            },
            4 => Op::Detach(u.arbitrary()?),
            5 => Op::CreateOk(u.arbitrary()?),
            6 if code & (1 << 27) == 0 => Op::CreateFail(u.arbitrary()?),
            6 => Op::CreateRefused(u.arbitrary()?),
            7 => Op::Advance(u.arbitrary()?),
            8 => Op::HandleTimeout,
            9 => Op::FireTimeout,
            10 => Op::Close,
            11 => Op::Resize(u.arbitrary()?),
            12 => Op::Retain(u.arbitrary()?),
            13 => Op::DeadFlag(u.arbitrary()?),
            14 => Op::CloseFailed,
            _ => Op::Foreign(u.arbitrary()?),
        })
    }
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
    /// `handle_create_failed`, then `handle_create_refused`: each gives the
    /// ticket back.
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
///
/// A shared pool lends clones of it: a clone is a *handle*, whose making and
/// drop the log counts apart from the objects themselves (the original stays
/// in the machine's lease table while handles are out).
#[derive(Debug)]
pub struct Obj {
    uid: u64,
    /// A clone made for a borrower of a shared pool, not the object itself.
    handle: bool,
    log: Rc<Log>,
}

/// What happened to the `Obj`s of one run.
#[derive(Debug, Default)]
pub struct Log {
    /// Ids of the objects themselves (not handles) dropped, in order.
    dropped: RefCell<Vec<u64>>,
    /// Handles on objects of the pool under test made so far.
    handles_made: Cell<u64>,
    /// Of those, how many were dropped.
    handles_dropped: Cell<u64>,
}

impl Log {
    /// Ids of objects of the pool under test dropped so far.
    fn dropped_ours(&self) -> Vec<u64> {
        let dropped = self.dropped.borrow();
        dropped
            .iter()
            .copied()
            .filter(|&u| u < FOREIGN_UID)
            .collect()
    }

    /// Handles on objects of the pool under test that are alive now.
    fn handles_alive(&self) -> u64 {
        self.handles_made.get() - self.handles_dropped.get()
    }
}

impl Clone for Obj {
    fn clone(&self) -> Self {
        if self.uid < FOREIGN_UID {
            self.log.handles_made.set(self.log.handles_made.get() + 1);
        }
        Obj {
            uid: self.uid,
            handle: true,
            log: self.log.clone(),
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        if !self.handle {
            self.log.dropped.borrow_mut().push(self.uid);
        } else if self.uid < FOREIGN_UID {
            let dropped = &self.log.handles_dropped;
            dropped.set(dropped.get() + 1);
        }
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
    /// Exclusive pool: held by the driver (a `Checkout`).
    Out,
    /// Exclusive pool: parked in the slot of this served waiter, not
    /// collected yet.
    Served(u32),
    /// Shared pool: in the lease table with at least one lease out, held by
    /// the driver or parked in served waiters' slots (see [`LentObj`]).
    Lent,
    /// Taken out with `detach` (in a shared pool: gone with its last lease
    /// after a detach, dropped by the machine, not closed).
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
    /// Checkouts collected (in a shared pool, leases collected: a lease
    /// served to a waiter that leaves without collecting it is not counted).
    checkouts: u64,
}

/// The part of a checkout's `ObjectMeta` that changes over the object's
/// life, as it was when the checkout was made (times in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    last_used: u64,
    checkouts: u64,
}

/// Why a lent object takes no new lease (the machine's `Retired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retired {
    /// It is closed, for this reason, with its last lease.
    Close(CloseReason),
    /// A borrower detached a lease: it leaves unclosed with its last lease.
    Detached,
}

/// A lent object of a shared pool: who holds its leases.
#[derive(Debug, Clone)]
struct LentObj {
    /// Its key in the machine's lease table (a slab, which reuses the most
    /// recently freed key first): among equally loaded objects, the lowest
    /// key takes the next lease.
    key: usize,
    /// Leases the driver holds (checkouts).
    held: usize,
    /// Leases parked in served waiters' slots, not collected yet.
    served: BTreeSet<u32>,
    /// `Some` once it takes no new lease.
    retired: Option<Retired>,
}

impl LentObj {
    fn leases(&self) -> usize {
        self.held + self.served.len()
    }
}

/// What a served waiter will find when it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Obj(u64),
    Closed,
    Create(String),
    /// `Failure::Refused`: the refusal back-off runs until then (in ms).
    Refused {
        until: u64,
    },
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
    /// Shared pool: the objects with leases out, by id.
    lent: BTreeMap<u64, LentObj>,
    /// The lease table's slab keys: the freed ones, the most recently freed
    /// last (taken first), and how many keys were ever used.
    free_keys: Vec<usize>,
    keys_used: usize,
    /// Leases taken so far: the handles a shared pool must have cloned.
    leases_taken: u64,
    /// Queued waiters, oldest first.
    queue: VecDeque<u32>,
    /// Served waiters whose outcome waits to be collected.
    served: BTreeMap<u32, Outcome>,
    /// For each waiter served an object: its checkout's stamp.
    stamps: BTreeMap<u32, Stamp>,
    /// The wake payload each live waiter currently has (see `payload`).
    payloads: BTreeMap<u32, u32>,
    /// Creations in flight (tickets the driver holds).
    creating: usize,
    next_waiter: u32,
    /// The background refill is paused until this time (after a refill failed);
    /// only `handle_timeout` lifts the pause.
    refill_paused_until: Option<u64>,
    refill_backoff: u64,
    /// A refusal back-off runs until this time: no creation starts, and a
    /// caller that finds nothing ready is refused. A success ends it, and so
    /// do `handle_timeout` and an `acquire` at or after it.
    refused_until: Option<u64>,
    /// The next back-off: the configured one after a success, doubling with
    /// each refusal up to `REFUSAL_BACKOFF_MAX` (or the configured one, if longer).
    refusal_backoff: u64,
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
            lent: BTreeMap::new(),
            free_keys: Vec::new(),
            keys_used: 0,
            leases_taken: 0,
            queue: VecDeque::new(),
            served: BTreeMap::new(),
            stamps: BTreeMap::new(),
            payloads: BTreeMap::new(),
            creating: 0,
            next_waiter: 0,
            refill_paused_until: None,
            refill_backoff: REFILL_BACKOFF_MIN.as_millis() as u64,
            refused_until: None,
            refusal_backoff: config.first_refusal_backoff(),
            counters: Counters::default(),
            expect: Expected::default(),
        };
        // A new pool starts its `min_idle` refill at once.
        model.start_wanted_creations();
        model
    }

    /// Most leases on one object: 1 in an exclusive pool.
    fn max_leases(&self) -> usize {
        self.config.leases_per_object()
    }

    fn shared(&self) -> bool {
        self.config.is_shared()
    }

    fn count(&self, f: impl Fn(Place) -> bool) -> usize {
        self.objects.values().filter(|o| f(o.place)).count()
    }

    /// Objects handed out, counting served-but-uncollected ones (as `Status`
    /// does), and lent objects once each.
    fn in_use(&self) -> usize {
        self.count(|p| matches!(p, Place::Out | Place::Served(_) | Place::Lent))
    }

    /// Leases out: one per object in use in an exclusive pool.
    fn leases(&self) -> usize {
        let exclusive = self.count(|p| matches!(p, Place::Out | Place::Served(_)));
        exclusive + self.lent.values().map(LentObj::leases).sum::<usize>()
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
            leases: self.leases(),
            creating: self.creating,
            waiting: self.queue.len(),
            closed: self.closed,
        }
    }

    fn obj(&mut self, uid: u64) -> &mut ModelObj {
        self.objects.get_mut(&uid).expect("model: unknown object")
    }

    fn lent_mut(&mut self, uid: u64) -> &mut LentObj {
        self.lent.get_mut(&uid).expect("model: object not lent")
    }

    /// The object's meta now, as a checkout made now would carry it.
    fn stamp(&self, uid: u64) -> Stamp {
        let obj = &self.objects[&uid];
        Stamp {
            last_used: obj.last_used,
            checkouts: obj.checkouts,
        }
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

    /// Serves the oldest queued waiter (in a shared pool, never with an
    /// object: see `serve_on`); false if nobody waits.
    fn serve_oldest(&mut self, outcome: Outcome) -> bool {
        let Some(waiter) = self.queue.pop_front() else {
            return false;
        };
        if let Outcome::Obj(uid) = outcome {
            assert!(!self.shared(), "model: a shared pool serves leases");
            self.stamps.insert(waiter, self.stamp(uid));
            self.obj(uid).place = Place::Served(waiter);
        }
        self.served.insert(waiter, outcome);
        self.expect.wakes.push(waiter);
        true
    }

    /// An object that is in no place (just created, given back alive, taken
    /// back from a cancelled waiter, or whose last lease came back alive)
    /// goes where the docs say: closed if the pool is closed, if the pool is
    /// already full without it (shrunk), or if it outlived `max_lifetime`;
    /// else to the oldest waiter (in a shared pool, to the oldest
    /// `max_leases` waiters); else idle.
    fn place(&mut self, uid: u64, now: u64) {
        assert_eq!(self.objects[&uid].place, Place::Limbo);
        if self.closed {
            self.close(uid, CloseReason::PoolClosed);
        } else if self.size() >= self.max_size {
            self.close(uid, CloseReason::Shrunk);
        } else if self.outlived(uid, now) {
            self.close(uid, CloseReason::MaxLifetime);
        } else if self.queue.is_empty() {
            self.obj(uid).place = Place::Idle;
            self.push_idle(uid);
        } else if self.shared() {
            self.lend(uid);
            self.serve_on(uid);
        } else {
            self.serve_oldest(Outcome::Obj(uid));
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
    /// `min(wanted, max_creating, what capacity leaves)`, where `wanted` is
    /// one per `max_leases` queued waiters (rounded up) plus the idle objects
    /// `min_idle` lacks (none while the refill is paused). Creations already
    /// in flight are never taken back. None starts during a refusal back-off.
    fn start_wanted_creations(&mut self) {
        if self.closed || self.refused_until.is_some() {
            return;
        }
        let refill = match self.refill_paused_until {
            Some(_) => 0,
            None => self.config.min_idle.saturating_sub(self.idle.len()),
        };
        let wanted = self.queue.len().div_ceil(self.max_leases()) + refill;
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

    /// Counts a checkout of `uid` as its borrower collects it; `stamp` is
    /// the object's meta when the checkout was made. Returns the stamp the
    /// checkout carries.
    fn collect(&mut self, uid: u64, stamp: Stamp) -> Stamp {
        // A shared lease carries the object's meta as it is when collected.
        let stamp = if self.shared() {
            self.lent_mut(uid).held += 1;
            self.stamp(uid)
        } else {
            self.obj(uid).place = Place::Out;
            stamp
        };
        self.counters.checkouts += 1;
        if stamp.checkouts > 0 {
            self.counters.reused += 1;
        }
        self.obj(uid).checkouts += 1;
        Stamp {
            checkouts: stamp.checkouts + 1,
            ..stamp
        }
    }

    // ----- the lease table of a shared pool -----

    /// An object in no place enters the lease table (no lease yet), under
    /// the key the slab gives it: the most recently freed, else a new one.
    fn lend(&mut self, uid: u64) {
        let key = self.free_keys.pop().unwrap_or_else(|| {
            self.keys_used += 1;
            self.keys_used - 1
        });
        let lent = LentObj {
            key,
            held: 0,
            served: BTreeSet::new(),
            retired: None,
        };
        assert!(self.lent.insert(uid, lent).is_none(), "model: lent twice");
        self.obj(uid).place = Place::Lent;
    }

    /// Its last lease came back: the object leaves the lease table (its key
    /// is freed) and is in no place; returns why it was retired, if it was.
    fn unlend(&mut self, uid: u64) -> Option<Retired> {
        let lent = self.lent.remove(&uid).expect("model: object not lent");
        assert_eq!(lent.leases(), 0, "model: unlent with leases out");
        self.free_keys.push(lent.key);
        self.obj(uid).place = Place::Limbo;
        lent.retired
    }

    /// Whether the lent object takes one more lease.
    fn has_room(&self, uid: u64) -> bool {
        let lent = &self.lent[&uid];
        lent.retired.is_none() && lent.leases() < self.max_leases()
    }

    /// The lent object the next borrower gets: the fewest leases among those
    /// with room, ties to the lowest key.
    fn least_loaded(&self) -> Option<u64> {
        self.lent
            .iter()
            .filter(|&(&uid, _)| self.has_room(uid))
            .min_by_key(|(_, lent)| (lent.leases(), lent.key))
            .map(|(&uid, _)| uid)
    }

    /// Takes one more lease on `uid` (the machine clones a handle); returns
    /// the stamp the lease's checkout carries until it is collected.
    fn take_lease(&mut self, uid: u64) -> Stamp {
        assert!(
            self.has_room(uid),
            "model: a lease on a full or retired object"
        );
        let stamp = self.stamp(uid);
        self.leases_taken += 1;
        stamp
    }

    /// Serves the oldest waiters with leases on `uid` while it has room.
    fn serve_on(&mut self, uid: u64) {
        while !self.queue.is_empty() && self.has_room(uid) {
            let waiter = self.queue.pop_front().expect("checked non-empty");
            let stamp = self.take_lease(uid);
            self.stamps.insert(waiter, stamp);
            self.lent_mut(uid).served.insert(waiter);
            self.served.insert(waiter, Outcome::Obj(uid));
            self.expect.wakes.push(waiter);
        }
    }

    /// The lent object takes no new lease. A second retirement keeps the
    /// first reason, except a detach, which always wins: the borrower took
    /// the object out of the pool, so the pool must not close it (as in an
    /// exclusive pool, where a detached object is never closed); and a lease
    /// given back dead after the close, which makes it `Dead` (as an
    /// exclusive pool closes a dead object given back after its close).
    fn retire(&mut self, uid: u64, why: Retired) {
        let retired = &mut self.lent_mut(uid).retired;
        let closed = Retired::Close(CloseReason::PoolClosed);
        if retired.is_none()
            || why == Retired::Detached
            || (why == Retired::Close(CloseReason::Dead) && *retired == Some(closed))
        {
            *retired = Some(why);
        }
    }

    /// A lease on `uid` came back at `now` (its holder has let go of it
    /// already); `retire` retires the object first, and so does
    /// `max_lifetime` while other leases are out. A still-lent object serves
    /// the oldest waiters it has room for; with its last lease, an object
    /// retired other than by the close leaves the pool for its reason, and
    /// any other is placed as if given back.
    fn return_lease(&mut self, uid: u64, now: u64, retire: Option<Retired>) {
        self.obj(uid).last_used = now;
        let others_out = self.lent[&uid].leases() > 0;
        let expired = others_out && self.outlived(uid, now);
        let expired = expired.then_some(Retired::Close(CloseReason::MaxLifetime));
        if let Some(why) = retire.or(expired) {
            self.retire(uid, why);
        }
        if others_out {
            self.serve_on(uid);
            return;
        }
        match self.unlend(uid) {
            None | Some(Retired::Close(CloseReason::PoolClosed)) => self.place(uid, now),
            Some(why) => self.leave_retired(uid, why),
        }
    }

    /// A retired object whose last lease came back leaves the pool: closed,
    /// or (detached) dropped by the machine and counted as detached.
    fn leave_retired(&mut self, uid: u64, why: Retired) {
        match why {
            Retired::Close(reason) => self.close(uid, reason),
            Retired::Detached => {
                assert_eq!(self.objects[&uid].place, Place::Limbo);
                self.obj(uid).place = Place::Detached;
                self.counters.detached += 1;
            }
        }
    }

    // ----- the inputs, as the model sees them -----

    /// The answer to `acquire`, and the objects `is_alive` is asked about,
    /// in order.
    fn acquire(&mut self, now: u64, dead: &BTreeSet<u64>) -> (Predicted, Vec<u64>) {
        let mut asked = Vec::new();
        if self.closed {
            return (Predicted::Closed, asked);
        }
        // Nobody may overtake a queued waiter: with a queue, no idle object
        // and no free lease is left anyway (invariant 2), and the caller
        // queues behind it.
        if self.queue.is_empty() {
            // Most recently used first; expired or dead ones are closed on the way.
            while let Some(uid) = self.idle.pop_back() {
                if self.outlived(uid, now) {
                    self.close(uid, CloseReason::MaxLifetime);
                    continue;
                }
                asked.push(uid);
                if dead.contains(&uid) {
                    self.close(uid, CloseReason::Dead);
                } else if self.shared() {
                    self.lend(uid);
                    let stamp = self.take_lease(uid);
                    return (Predicted::Ready(uid, self.collect(uid, stamp)), asked);
                } else {
                    let stamp = self.stamp(uid);
                    return (Predicted::Ready(uid, self.collect(uid, stamp)), asked);
                }
            }
            // Shared pool: then the least loaded lent object; expired or
            // dead ones are retired on the way.
            while let Some(uid) = self.least_loaded() {
                if self.outlived(uid, now) {
                    self.retire(uid, Retired::Close(CloseReason::MaxLifetime));
                    continue;
                }
                asked.push(uid);
                if dead.contains(&uid) {
                    self.retire(uid, Retired::Close(CloseReason::Dead));
                } else {
                    let stamp = self.take_lease(uid);
                    return (Predicted::Ready(uid, self.collect(uid, stamp)), asked);
                }
            }
        }
        // Nothing ready: during a refusal back-off the caller is refused,
        // not queued; at or after its end, the back-off is over and the
        // caller queues (and its creation starts).
        if let Some(until) = self.refused_until {
            if now < until {
                return (Predicted::Refused(until), asked);
            }
            self.refused_until = None;
        }
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        self.queue.push_back(waiter);
        self.payloads.insert(waiter, payload(waiter, 0));
        (Predicted::Queued(waiter), asked)
    }

    /// `None` while still queued; else what the waiter collects (with its
    /// checkout's stamp if it is an object).
    fn poll(&mut self, waiter: u32) -> Option<(Outcome, Option<Stamp>)> {
        if self.queue.contains(&waiter) {
            let p = self.payloads.get_mut(&waiter).expect("live waiter");
            *p = payload(waiter, (*p & 0xff) + 1);
            return None;
        }
        let outcome = self.served.remove(&waiter).expect("model: unknown waiter");
        self.payloads.remove(&waiter);
        let mut stamp = None;
        if let Outcome::Obj(uid) = outcome {
            let served = self
                .stamps
                .remove(&waiter)
                .expect("model: served unstamped");
            if self.shared() {
                assert!(self.lent_mut(uid).served.remove(&waiter));
            }
            stamp = Some(self.collect(uid, served));
        }
        Some((outcome, stamp))
    }

    fn cancel(&mut self, waiter: u32, now: u64) {
        self.payloads.remove(&waiter);
        if let Some(pos) = self.queue.iter().position(|&w| w == waiter) {
            // Cancelled while queued, possibly from the middle of the queue.
            self.queue.remove(pos);
        } else if let Some(Outcome::Obj(uid)) = self.served.remove(&waiter) {
            // It had been served an object: nothing is lost, the object (or
            // the lease) is given back now, to the next waiter, or idle.
            self.stamps.remove(&waiter);
            if self.shared() {
                assert!(self.lent_mut(uid).served.remove(&waiter));
                self.return_lease(uid, now, None);
            } else {
                let obj = self.obj(uid);
                obj.place = Place::Limbo;
                obj.last_used = now;
                self.place(uid, now);
            }
        }
    }

    fn release(&mut self, uid: u64, now: u64, alive: bool) {
        if self.shared() {
            let lent = self.lent_mut(uid);
            assert!(lent.held > 0, "model: no lease held on {uid}");
            lent.held -= 1;
            let dead = (!alive).then_some(Retired::Close(CloseReason::Dead));
            self.return_lease(uid, now, dead);
            return;
        }
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
        if self.shared() {
            // The borrower keeps its handle; the object takes no new lease
            // and leaves, unclosed, with its last one.
            let lent = self.lent_mut(uid);
            assert!(lent.held > 0, "model: no lease held on {uid}");
            lent.held -= 1;
            self.retire(uid, Retired::Detached);
            if self.lent[&uid].leases() == 0 {
                let why = self.unlend(uid).expect("retired above");
                self.leave_retired(uid, why);
            }
            return;
        }
        assert_eq!(self.objects[&uid].place, Place::Out);
        self.obj(uid).place = Place::Detached;
        self.counters.detached += 1;
    }

    /// Returns the id the new object gets.
    fn created(&mut self, now: u64) -> u64 {
        self.creating -= 1;
        let uid = self.counters.created;
        self.counters.created += 1;
        // A success resets the refill back-off (a pause already set stays),
        // and ends a refusal back-off and resets it.
        self.refill_backoff = REFILL_BACKOFF_MIN.as_millis() as u64;
        self.refused_until = None;
        self.refusal_backoff = self.config.first_refusal_backoff();
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
        let undelivered = self.fail_uncovered(error);
        if undelivered.is_some() {
            // A background refill failed: pause it, doubling the pause each time.
            self.refill_paused_until = Some(now + self.refill_backoff);
            self.refill_backoff =
                (self.refill_backoff * 2).min(REFILL_BACKOFF_MAX.as_millis() as u64);
        }
        undelivered
    }

    /// A refused creation: a back-off starts (the next one twice as long, up
    /// to the cap), then the uncovered waiters fail as for any failure.
    /// Returns the error if it is given back undelivered (with no refill
    /// pause: the back-off holds the refill anyway).
    fn create_refused(&mut self, error: String, now: u64) -> Option<String> {
        self.creating -= 1;
        self.counters.create_failed += 1;
        self.counters.refused += 1;
        self.refused_until = Some(now + self.refusal_backoff);
        let longest =
            (REFUSAL_BACKOFF_MAX.as_millis() as u64).max(self.config.first_refusal_backoff());
        self.refusal_backoff = (self.refusal_backoff * 2).min(longest);
        self.fail_uncovered(error)
    }

    /// After a failed or refused creation: the waiters beyond what the
    /// creations left in flight serve (`max_leases` each) are uncovered.
    /// The oldest of them was counting on this creation and gets the error.
    /// During a refusal back-off no creation will start for the others, so
    /// they get `Refused` at once; otherwise they stay queued, and creations
    /// start for them (`start_wanted_creations`). Returns the error if nobody
    /// was uncovered.
    fn fail_uncovered(&mut self, error: String) -> Option<String> {
        let covered = self.creating * self.max_leases();
        let uncovered = self.queue.len().saturating_sub(covered);
        if uncovered == 0 {
            return Some(error);
        }
        self.serve_oldest(Outcome::Create(error));
        if let Some(until) = self.refused_until {
            for _ in 1..uncovered {
                self.serve_oldest(Outcome::Refused { until });
            }
        }
        None
    }

    fn timeout(&mut self, now: u64) {
        if self.refill_paused_until.is_some_and(|until| until <= now) {
            self.refill_paused_until = None;
        }
        if self.refused_until.is_some_and(|until| until <= now) {
            self.refused_until = None;
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
        // Lent objects are closed with their last lease.
        let lent: Vec<u64> = self.lent.keys().copied().collect();
        for uid in lent {
            self.retire(uid, Retired::Close(CloseReason::PoolClosed));
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

    /// The objects `Op::DeadFlag` picks from: the idle ones (least recently
    /// used first), then those handed out (by id), in both kinds of pool
    /// alike, so that one lease each can be compared with an exclusive pool.
    fn flaggable(&self) -> Vec<u64> {
        let in_use = self.objects.iter().filter_map(|(&uid, o)| {
            matches!(o.place, Place::Out | Place::Served(_) | Place::Lent).then_some(uid)
        });
        self.idle.iter().copied().chain(in_use).collect()
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
        deadlines.extend(self.refused_until);
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
                Place::Lent => assert!(self.lent.contains_key(&uid)),
                _ => {}
            }
            if self.shared() {
                assert!(!matches!(obj.place, Place::Out | Place::Served(_)));
            }
        }
        let idle: BTreeSet<u64> = self.idle.iter().copied().collect();
        assert_eq!(idle.len(), self.idle.len(), "model: an object idle twice");
        assert_eq!(idle.len(), self.count(|p| p == Place::Idle));
        assert!(self.queue.is_empty() || self.idle.is_empty());
        // The lease table: leases within 1..=max_leases, each served lease
        // is its waiter's outcome, keys distinct and not free, nothing takes
        // a lease while a waiter is queued or once the pool is closed.
        let mut keys: BTreeSet<usize> = self.free_keys.iter().copied().collect();
        assert_eq!(keys.len(), self.free_keys.len(), "model: a key freed twice");
        for (&uid, lent) in &self.lent {
            assert_eq!(self.objects[&uid].place, Place::Lent);
            assert!((1..=self.max_leases()).contains(&lent.leases()));
            for w in &lent.served {
                assert_eq!(self.served.get(w), Some(&Outcome::Obj(uid)));
            }
            assert!(lent.key < self.keys_used && keys.insert(lent.key));
            assert!(!self.closed || lent.retired.is_some());
        }
        assert!(self.queue.is_empty() || self.least_loaded().is_none());
        // A refusal back-off fails at once every waiter no creation covers.
        if self.refused_until.is_some() {
            let covered = self.creating * self.max_leases();
            assert!(
                self.queue.len() <= covered,
                "model: uncovered waiters in a back-off"
            );
        }
        let served_objects = self.served.values();
        let served_objects = served_objects.filter(|o| matches!(o, Outcome::Obj(_)));
        assert_eq!(served_objects.count(), self.stamps.len());
    }
}

/// The model's prediction for `acquire`.
#[derive(Debug, PartialEq, Eq)]
enum Predicted {
    /// This object, with this stamp.
    Ready(u64, Stamp),
    Queued(u32),
    Closed,
    /// `Acquire::Refused` until then (ms).
    Refused(u64),
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
    /// `acquire` answered `Refused` until then (ms).
    AcquireRefused { until: u64 },
    /// `poll_waiter` found the waiter still queued.
    Pending { waiter: u32 },
    /// `poll_waiter` collected this outcome.
    Collected { waiter: u32, outcome: Outcome },
    /// `poll_waiter` collected this object for this waiter, and
    /// `release_uncollected` gave it back.
    Uncollected { waiter: u32, uid: u64 },
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
    /// `handle_create_refused`; `delivered` if a waiter got the error.
    CreateRefused { delivered: bool },
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
    /// Objects closed or detached (and the handles detached from a shared
    /// pool), kept until the end so their drop is ours.
    graveyard: Vec<Obj>,
    /// Ids seen in an `Action::Close`.
    closed_ids: BTreeSet<u64>,
    /// Ids of the objects that left through `detach`: the objects `detach`
    /// gave back (exclusive pool), or that the machine dropped (shared pool:
    /// the object leaves with its last lease after a detach, and only a
    /// detached object may be dropped by the machine).
    detached_ids: BTreeSet<u64>,
    log: Rc<Log>,
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
        let log = Rc::new(Log::default());
        let pool = config.pool();
        let mut driver = Driver {
            pool,
            model: Model::new(config),
            side: Side::new(base, &log, config.is_shared()),
            base,
            now: 0,
            checkouts: Vec::new(),
            waiters: Vec::new(),
            tickets: Vec::new(),
            dead: BTreeSet::new(),
            graveyard: Vec::new(),
            closed_ids: BTreeSet::new(),
            detached_ids: BTreeSet::new(),
            log,
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
            handle: false,
            log: self.log.clone(),
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

    /// The `ObjectMeta` the model expects for `uid` now.
    fn expected_meta(&self, uid: u64) -> ObjectMeta {
        self.stamped_meta(uid, self.model.stamp(uid))
    }

    /// The `ObjectMeta` of `uid` with the changing part from `stamp`.
    fn stamped_meta(&self, uid: u64, stamp: Stamp) -> ObjectMeta {
        ObjectMeta {
            id: uid,
            created_at: self.at(self.model.objects[&uid].created_at),
            last_used: self.at(stamp.last_used),
            checkouts: stamp.checkouts,
        }
    }

    /// A checkout just handed out: of `uid`, carrying `stamp`, and in a
    /// shared pool a lease holding a handle (a clone), else the object itself.
    fn check_checkout(&self, checkout: &Checkout<Obj>, uid: u64, stamp: Stamp) {
        let here = self.at_step();
        assert_eq!(checkout.object().uid, uid, "{here}: wrong object");
        assert_eq!(
            *checkout.meta(),
            self.stamped_meta(uid, stamp),
            "{here}: wrong meta for object {uid}",
        );
        let shared = self.model.shared();
        assert_eq!(checkout.is_shared(), shared, "{here}: is_shared");
        assert_eq!(checkout.object().handle, shared, "{here}: handle or object");
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
            Op::ReleaseUncollected(i) => {
                if self.waiters.is_empty() {
                    return self.skip();
                }
                let (w, id) = self.waiters.remove(usize::from(i) % self.waiters.len());
                match self.model.served.get(&w) {
                    Some(&Outcome::Obj(uid)) => self.release_uncollected(w, id, uid),
                    // Nothing to give back: the waiter leaves.
                    _ => {
                        self.model.cancel(w, self.now);
                        self.pool.cancel_waiter(id, now).expect("our waiter");
                    }
                }
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
                // A shared pool gives back the borrower's handle; the object
                // itself leaves the pool with its last lease (see `after_step`).
                if !obj.handle {
                    self.detached_ids.insert(uid);
                }
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
                self.fail_creation(i, false);
            }
            Op::CreateRefused(i) => {
                if self.tickets.is_empty() {
                    return self.skip();
                }
                self.fail_creation(i, true);
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
                let flaggable = self.model.flaggable();
                if flaggable.is_empty() {
                    return self.skip();
                }
                self.dead
                    .insert(flaggable[usize::from(i) % flaggable.len()]);
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
        let waiter = self.model.next_waiter;
        let (predicted, expected_asked) = self.model.acquire(self.now, &self.dead);
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
        // `is_alive` is asked about the unexpired idle objects, most recently
        // used first, then (shared pool) the unexpired lent objects with room,
        // least loaded first, each once, until one is alive.
        assert_eq!(
            asked,
            expected_asked,
            "{}: the objects is_alive was asked about",
            self.at_step()
        );
        match (predicted, got) {
            (Predicted::Ready(uid, stamp), Acquire::Ready(c)) => {
                self.check_checkout(&c, uid, stamp);
                self.checkouts.push(c);
                self.events.push(Event::Ready { uid });
            }
            (Predicted::Queued(w), Acquire::Queued(id)) => {
                self.waiters.push((w, id));
                self.events.push(Event::Queued { waiter: w });
            }
            (Predicted::Closed, Acquire::Closed) => self.events.push(Event::AcquireClosed),
            (Predicted::Refused(until), Acquire::Refused { until: got }) => {
                assert_eq!(
                    got,
                    self.at(until),
                    "{}: acquire refused until {}ms, the model says {until}ms",
                    self.at_step(),
                    self.ms(got)
                );
                self.events.push(Event::AcquireRefused { until });
            }
            (predicted, got) => panic!(
                "{}: acquire returned {got:?}, the model predicted {predicted:?}",
                self.at_step()
            ),
        }
    }

    /// `handle_create_failed`, or `handle_create_refused` if `refused`, for
    /// the held ticket `i` picks, with a fresh error.
    fn fail_creation(&mut self, i: u8, refused: bool) {
        let now = self.instant();
        let t = self.tickets.remove(usize::from(i) % self.tickets.len());
        self.next_error += 1;
        let (predicted, given_back) = if refused {
            let error = format!("create refused #{}", self.next_error);
            let predicted = self.model.create_refused(error.clone(), self.now);
            let given_back = self.pool.handle_create_refused(t, error, now);
            (predicted, given_back.expect("our ticket"))
        } else {
            let error = format!("create failed #{}", self.next_error);
            let predicted = self.model.create_failed(error.clone(), self.now);
            let given_back = self.pool.handle_create_failed(t, error, now);
            (predicted, given_back.expect("our ticket"))
        };
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
        let delivered = given_back.is_none();
        self.events.push(if refused {
            Event::CreateRefused { delivered }
        } else {
            Event::CreateFailed { delivered }
        });
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
            (Some((outcome, stamp)), WaitPoll::Ready(result)) => {
                assert_eq!(
                    updated,
                    None,
                    "{}: update on a served waiter",
                    self.at_step()
                );
                match (&outcome, result) {
                    (Outcome::Obj(uid), Ok(c)) => {
                        let stamp = stamp.expect("the model stamps every object served");
                        self.check_checkout(&c, *uid, stamp);
                        self.checkouts.push(c);
                    }
                    (Outcome::Closed, Err(Failure::Closed)) => {}
                    (Outcome::Create(e), Err(Failure::Create(got))) if *e == got => {}
                    (Outcome::Refused { until }, Err(Failure::Refused { until: got }))
                        if self.at(*until) == got => {}
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

    /// Waiter `w`, served object `uid`, leaves after its checkout was
    /// collected for it: `poll_waiter`, then `release_uncollected`. The
    /// model sees a cancel before collecting (the object or lease passes on,
    /// uncounted); the checkout in between is the one `poll` would check.
    fn release_uncollected(&mut self, w: u32, id: WaiterId, uid: u64) {
        let now = self.instant();
        let stamp = match self.model.shared() {
            true => self.model.stamp(uid),
            false => self.model.stamps[&w],
        };
        let stamp = Stamp {
            checkouts: stamp.checkouts + 1,
            ..stamp
        };
        self.model.cancel(w, self.now);
        let got = self
            .pool
            .poll_waiter(id, |_| panic!("update on a served waiter"))
            .expect("our waiter");
        let WaitPoll::Ready(Ok(c)) = got else {
            panic!(
                "{}: poll_waiter({w}) returned {got:?}, the model predicted object {uid}",
                self.at_step()
            );
        };
        self.check_checkout(&c, uid, stamp);
        self.pool.release_uncollected(c, now).expect("our checkout");
        self.events.push(Event::Uncollected { waiter: w, uid });
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
                    let Err(Foreign(t)) = pool.handle_create_refused(t, "x".into(), now) else {
                        panic!("handle_create_refused accepted a foreign ticket");
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
                    let Err(Foreign(t)) = side.handle_create_refused(t, "x".into(), now) else {
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
        let places = |f: fn(&Place) -> bool| -> BTreeSet<u64> {
            self.model
                .objects
                .iter()
                .filter(|(_, o)| f(&o.place))
                .map(|(&u, _)| u)
                .collect()
        };
        // Checkouts held per object: one per object out of an exclusive
        // pool; in a shared pool, the leases the model says the driver holds.
        let mut held: BTreeMap<u64, usize> = BTreeMap::new();
        for c in &self.checkouts {
            *held.entry(c.object().uid).or_default() += 1;
        }
        let lent = self.model.lent.iter();
        let mut expected_held: BTreeMap<u64, usize> = lent
            .filter(|(_, l)| l.held > 0)
            .map(|(&u, l)| (u, l.held))
            .collect();
        expected_held.extend(places(|p| *p == Place::Out).into_iter().map(|u| (u, 1)));
        assert_eq!(held, expected_held, "{here}: checkouts held per object");
        // The machine drops no object of ours, but in a shared pool one that
        // leaves with its last lease after a detach (its borrower keeps a
        // handle): those are the detached ones there.
        let dropped: BTreeSet<u64> = self.log.dropped_ours().into_iter().collect();
        if self.model.shared() {
            self.detached_ids = dropped;
        } else {
            assert!(
                dropped.is_empty(),
                "{here}: the machine dropped {dropped:?}"
            );
        }
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
        let parked = places(|p| matches!(p, Place::Idle | Place::Served(_) | Place::Lent));
        let parked = parked.iter().filter(|u| !held.contains_key(u)).count();
        let total = held.len() + self.closed_ids.len() + self.detached_ids.len() + parked;
        assert_eq!(total as u64, self.model.counters.created, "{here}: objects");
        // Handles: a shared pool clones one per lease taken (an exclusive
        // pool none), and those alive are the leases out (held or parked in
        // served waiters) and the handles detached.
        assert_eq!(
            self.log.handles_made.get(),
            self.model.leases_taken,
            "{here}: handles cloned"
        );
        let leases_out: usize = self.model.lent.values().map(LentObj::leases).sum();
        let graveyard = self.graveyard.iter();
        let detached_handles = graveyard
            .filter(|o| o.handle && o.uid < FOREIGN_UID)
            .count();
        assert_eq!(
            self.log.handles_alive(),
            (leases_out + detached_handles) as u64,
            "{here}: handles alive"
        );
        let waiters: BTreeSet<u32> = self.waiters.iter().map(|(w, _)| *w).collect();
        let live: BTreeSet<u32> = self.model.payloads.keys().copied().collect();
        assert_eq!(waiters, live, "{here}: waiter tokens");
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
            (status.size, status.idle, status.in_use, status.leases),
            (0, 0, 0, 0),
            "after teardown: {status:?}"
        );
        assert_eq!(status.creating, 0, "after teardown: {status:?}");
        // Every object created left exactly once: closed or detached.
        let created = self.model.counters.created;
        let gone: BTreeSet<u64> = self.closed_ids.union(&self.detached_ids).copied().collect();
        assert_eq!(gone, (0..created).collect(), "after teardown");
        assert!(self.closed_ids.is_disjoint(&self.detached_ids));
    }
}

impl Side {
    /// A side pool holding one checkout, one queued waiter and one ticket;
    /// `shared`, a shared pool of one lease per object, so that its checkout
    /// is a lease, like the ones of the pool under test.
    fn new(now: Instant, log: &Rc<Log>, shared: bool) -> Self {
        let mut pool = match shared {
            false => PoolState::new(Limits::new(2)),
            true => PoolState::shared(Limits::new(2), 1),
        }
        .expect("valid");
        let Acquire::Queued(first) = pool.acquire(now, |_| true, || 0) else {
            panic!("an empty pool queues");
        };
        let Some(Action::Create(ticket)) = pool.poll_action() else {
            panic!("a queued waiter starts a creation");
        };
        let obj = Obj {
            uid: FOREIGN_UID,
            handle: false,
            log: log.clone(),
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
        log,
        model,
        events,
        checkouts,
        detached_ids,
        ..
    } = driver;
    assert!(checkouts.is_empty());
    drop(pool);
    drop(side);
    // Only a shared pool drops objects itself: the detached ones, already
    // (none while being dropped empty).
    let machine_dropped: BTreeSet<u64> = match model.shared() {
        true => detached_ids,
        false => BTreeSet::new(),
    };
    assert_eq!(
        log.dropped_ours().into_iter().collect::<BTreeSet<_>>(),
        machine_dropped,
        "objects dropped by the machine"
    );
    drop(graveyard);
    let mut dropped = log.dropped_ours();
    dropped.sort_unstable();
    assert_eq!(
        dropped,
        (0..model.counters.created).collect::<Vec<_>>(),
        "every object is dropped exactly once"
    );
    assert_eq!(log.handles_alive(), 0, "every handle is dropped");
    assert_eq!(
        log.handles_made.get(),
        model.leases_taken,
        "one handle a lease"
    );
    Trace {
        events,
        teardown_from,
        status,
        counters,
    }
}
