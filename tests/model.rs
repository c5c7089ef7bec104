//! Property and fuzz-style tests of the sans-IO machine against a reference
//! model. The interpreter and the model live in `tests/support/ops.rs`, shared
//! with the cargo-fuzz target `fuzz/fuzz_targets/pool_ops.rs`; its module docs
//! list what every step checks.

#[path = "support/ops.rs"]
mod ops;

use std::time::{Duration, Instant};

use ops::{Config, Event, ForeignKind, ForeignOp, Keep, Op, Outcome, run, run_bytes};
use proptest::prelude::*;
use wtpool::machine::{Acquire, Action, CloseReason, Limits, PoolState};

// ---------------------------------------------------------------------------
// Random sequences (proptest)
// ---------------------------------------------------------------------------

/// Exclusive pools a third of the time; else shared with 1 to 4 leases per
/// object (1: must act as an exclusive pool, 2 to 4: lent objects filling
/// up unevenly).
fn max_leases() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        1 => Just(None),
        2 => (1usize..=4).prop_map(Some),
    ]
}

/// The first refusal back-off: mostly the default (500 ms), else short
/// enough to end within a few `Advance`s, or above the 30 s cap.
fn refusal_backoff_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        3 => Just(None),
        2 => (1u64..=300).prop_map(Some),
        1 => Just(Some(40_000)),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..=8)
        .prop_flat_map(|max_size| {
            (
                Just(max_size),
                prop_oneof![1..=max_size + 1, Just(usize::MAX)],
                0..=max_size,
                proptest::option::of(1u64..=300),
                proptest::option::of(1u64..=600),
                max_leases(),
                refusal_backoff_ms(),
            )
        })
        .prop_map(
            |(
                max_size,
                max_creating,
                min_idle,
                idle_timeout_ms,
                max_lifetime_ms,
                max_leases,
                refusal_backoff_ms,
            )| {
                Config {
                    max_size,
                    max_creating,
                    min_idle,
                    idle_timeout_ms,
                    max_lifetime_ms,
                    max_leases,
                    refusal_backoff_ms,
                }
            },
        )
}

fn keep() -> impl Strategy<Value = Keep> {
    prop_oneof![
        Just(Keep::All),
        Just(Keep::None),
        Just(Keep::EvenId),
        Just(Keep::OddId),
        Just(Keep::Used),
        Just(Keep::Unused),
    ]
}

fn foreign() -> impl Strategy<Value = ForeignOp> {
    (
        prop_oneof![
            Just(ForeignKind::Release),
            Just(ForeignKind::Detach),
            Just(ForeignKind::Poll),
            Just(ForeignKind::Cancel),
            Just(ForeignKind::Created),
            Just(ForeignKind::CreateFailed),
        ],
        any::<bool>(),
    )
        .prop_map(|(kind, into_main)| ForeignOp { kind, into_main })
}

/// Ops weighted so that pools fill, queue, drain and time out within a
/// hundred steps.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        3 => any::<u8>().prop_map(Op::PollWaiter),
        2 => any::<u8>().prop_map(Op::CancelWaiter),
        2 => any::<u8>().prop_map(Op::ReleaseUncollected),
        5 => (any::<u8>(), prop::bool::weighted(0.8))
            .prop_map(|(index, alive)| Op::Release { index, alive }),
        1 => any::<u8>().prop_map(Op::Detach),
        5 => any::<u8>().prop_map(Op::CreateOk),
        2 => any::<u8>().prop_map(Op::CreateFail),
        1 => any::<u8>().prop_map(Op::CreateRefused),
        3 => any::<u8>().prop_map(Op::Advance),
        1 => Just(Op::HandleTimeout),
        2 => Just(Op::FireTimeout),
        1 => Just(Op::Close),
        1 => (0u8..10).prop_map(Op::Resize),
        1 => keep().prop_map(Op::Retain),
        1 => any::<u8>().prop_map(Op::DeadFlag),
        1 => Just(Op::CloseFailed),
        1 => foreign().prop_map(Op::Foreign),
    ]
}

/// Like `op()` but never closes the pool, so long runs stay interesting.
fn op_open() -> impl Strategy<Value = Op> {
    op().prop_filter("no close", |op| *op != Op::Close)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any sequence of inputs: the machine agrees with the model at every step.
    #[test]
    fn machine_matches_model(config in config(), ops in prop::collection::vec(op(), 0..150)) {
        run(&config, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 250,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Longer runs of an open pool, where queues and idle lists grow and the
    /// clocks of idle objects drift apart.
    #[test]
    fn long_open_runs_match_model(config in config(), ops in prop::collection::vec(op_open(), 200..400)) {
        run(&config, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A shared pool of one lease per object is an exclusive pool but for
    /// `Checkout::is_shared`: the same ops give the same events (objects
    /// handed out, waiters served, closes and their reasons), status and
    /// counters. Each run is checked against the model too.
    #[test]
    fn one_lease_each_acts_exclusive(config in config(), ops in prop::collection::vec(op(), 0..150)) {
        let exclusive = run(&Config { max_leases: None, ..config.clone() }, &ops);
        let one_lease = run(&Config { max_leases: Some(1), ..config }, &ops);
        prop_assert_eq!(&exclusive.events, &one_lease.events);
        prop_assert_eq!(exclusive.status, one_lease.status);
        prop_assert_eq!(exclusive.counters, one_lease.counters);
    }
}

// ---------------------------------------------------------------------------
// The fuzz target's path on stable: bytes -> (config, ops) -> run
// ---------------------------------------------------------------------------

#[test]
fn pseudo_random_byte_buffers() {
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut ran_ops = 0;
    for _ in 0..3000 {
        let len = rng.usize(0..700);
        let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if let Some((_, ops)) = ops::from_bytes(&data) {
            ran_ops += ops.len();
        }
        run_bytes(&data);
    }
    // The buffers really turned into work, not only empty op lists.
    assert!(ran_ops > 100_000, "only {ran_ops} ops ran");
}

/// Replays the checked-in seed corpus (and anything a fuzz run added to it).
#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pool_ops");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut files = 0;
    for entry in entries {
        let path = entry.expect("readable corpus dir").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("readable corpus file");
            run_bytes(&data);
            files += 1;
        }
    }
    assert!(files > 0, "{} exists but holds no inputs", dir.display());
}

#[test]
fn bytes_decode_to_valid_configs_and_ops() {
    // The empty input and short inputs decode (to a default config) and run.
    let (config, ops) = ops::from_bytes(&[]).expect("arbitrary fills with zeros");
    assert_eq!((config.max_size, config.min_idle), (1, 0));
    assert_eq!(config.max_leases, None, "exclusive");
    assert!(ops.is_empty());
    // Any byte pattern gives limits the machine accepts, and every kind of
    // pool comes out: exclusive, and shared with 1 to 4 leases.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut kinds = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let data: Vec<u8> = (0..16).map(|_| rng.u8(..)).collect();
        let (config, _) = ops::from_bytes(&data).expect("decodes");
        assert!((1..=8).contains(&config.max_size));
        assert!(config.min_idle <= config.max_size);
        assert!(config.limits().validate().is_ok(), "{config:?}");
        *kinds.entry(config.max_leases).or_insert(0) += 1;
    }
    let kinds: Vec<Option<usize>> = kinds.into_keys().collect();
    assert_eq!(kinds, [None, Some(1), Some(2), Some(3), Some(4)]);
}

/// The op codes stay those of the inputs saved before `Op::CreateRefused`:
/// a little-endian `u32` whose top 4 bits pick the op (`CreateFail` is 6,
/// `CloseFailed` 14), and the next bit turns a `CreateFail` into a
/// `CreateRefused` of the same ticket, and a `CancelWaiter` (2) into a
/// `ReleaseUncollected` of the same waiter.
#[test]
fn op_codes_are_stable() {
    let config = [0, 0, 0, 0, 0]; // max_size 1, no option set
    let codes: [&[u8]; 7] = [
        &[0, 0, 0, 0x00],             // Acquire
        &[0, 0, 0, 0x20, 5],          // CancelWaiter(5)
        &[0, 0, 0, 0x28, 6],          // ReleaseUncollected(6)
        &[0, 0, 0, 0x60, 2],          // CreateFail(2)
        &[0, 0, 0, 0x68, 3],          // CreateRefused(3)
        &[0xff, 0xff, 0xff, 0x6f, 4], // CreateRefused(4)
        &[0, 0, 0, 0xe0],             // CloseFailed
    ];
    let data: Vec<u8> = config.into_iter().chain(codes.concat()).collect();
    let (_, ops) = ops::from_bytes(&data).expect("decodes");
    assert_eq!(
        ops,
        [
            Op::Acquire,
            Op::CancelWaiter(5),
            Op::ReleaseUncollected(6),
            Op::CreateFail(2),
            Op::CreateRefused(3),
            Op::CreateRefused(4),
            Op::CloseFailed,
        ]
    );
}

// ---------------------------------------------------------------------------
// Hand-written scenarios the model must get right
// ---------------------------------------------------------------------------

fn plain(max_size: usize) -> Config {
    Config {
        max_size,
        max_creating: max_size,
        min_idle: 0,
        idle_timeout_ms: None,
        max_lifetime_ms: None,
        max_leases: None,
        refusal_backoff_ms: None,
    }
}

/// A shared pool of `max_size` objects with `k` leases each, no other limit.
fn shared(max_size: usize, k: usize) -> Config {
    Config {
        max_leases: Some(k),
        ..plain(max_size)
    }
}

fn collected(events: &[Event]) -> Vec<(u32, Outcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Collected { waiter, outcome } => Some((*waiter, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn woken(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Woken { waiter } => Some(*waiter),
            _ => None,
        })
        .collect()
}

fn closed(events: &[Event]) -> Vec<(u64, CloseReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed { uid, reason } => Some((*uid, *reason)),
            _ => None,
        })
        .collect()
}

/// Three waiters queue on a full pool; the middle one is cancelled; the two
/// objects given back go to the first and the third, in that order.
#[test]
fn waiter_cancelled_from_the_middle_of_the_queue() {
    let ops = [
        Op::Acquire,     // waiter 0, creation #1
        Op::Acquire,     // waiter 1, creation #2
        Op::CreateOk(0), // object 0 -> waiter 0
        Op::CreateOk(0), // object 1 -> waiter 1
        Op::PollWaiter(0),
        Op::PollWaiter(0),   // both collected: the pool (2) is full
        Op::Acquire,         // waiter 2
        Op::Acquire,         // waiter 3
        Op::Acquire,         // waiter 4
        Op::CancelWaiter(1), // waiter 3, from the middle
        Op::Release {
            index: 0,
            alive: true,
        }, // object 0 -> waiter 2
        Op::Release {
            index: 0,
            alive: true,
        }, // object 1 -> waiter 4
        Op::PollWaiter(0),
        Op::PollWaiter(0),
    ];
    let trace = run(&plain(2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(woken(events), vec![0, 1, 2, 4]);
    assert_eq!(
        collected(events),
        vec![
            (0, Outcome::Obj(0)),
            (1, Outcome::Obj(1)),
            (2, Outcome::Obj(0)),
            (4, Outcome::Obj(1)),
        ]
    );
    assert_eq!((trace.status.in_use, trace.status.waiting), (2, 0));
}

/// A waiter served with an object and cancelled before collecting it: the
/// object goes to the next waiter, not to the idle list.
#[test]
fn served_then_cancelled_waiter_passes_its_object_on() {
    let ops = [
        Op::Acquire,         // waiter 0, creation
        Op::Acquire,         // waiter 1 (max_size 1: no second creation)
        Op::CreateOk(0),     // object 0 -> waiter 0 (woken)
        Op::CancelWaiter(0), // waiter 0 leaves without collecting
        Op::PollWaiter(0),   // waiter 1 has object 0
    ];
    let trace = run(&plain(1), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(woken(events), vec![0, 1]);
    assert_eq!(collected(events), vec![(1, Outcome::Obj(0))]);
    assert_eq!(trace.counters.create_started, 1, "no creation replaced it");
    assert_eq!(trace.status.idle, 0);
    assert_eq!(trace.counters.checkouts, 1);
}

/// A served waiter whose object was collected for it (`poll_waiter`) and
/// given back (`release_uncollected`) passes the object on, as a cancel
/// before collecting does: the next waiter gets it, and only that second
/// collection counts, in an exclusive pool and in a shared one.
#[test]
fn an_uncollected_checkout_given_back_passes_its_object_on() {
    let ops = [
        Op::Acquire,               // waiter 0, creation
        Op::CreateOk(0),           // object 0 -> waiter 0
        Op::PollWaiter(0),         // collected: object 0 used once
        RELEASE,                   // object 0 idle
        Op::Acquire,               // object 0 again: used twice, reused once
        Op::Acquire,               // waiter 1
        Op::Acquire,               // waiter 2
        RELEASE,                   // object 0 -> waiter 1
        Op::ReleaseUncollected(0), // waiter 1 leaves: object 0 -> waiter 2
        Op::ReleaseUncollected(0), // waiter 2 leaves: object 0 idle
    ];
    let trace = same_as_exclusive(plain(1), &ops);
    let events = &trace.events[..trace.teardown_from];
    let uncollected = |e: &Event| matches!(e, Event::Uncollected { uid: 0, .. });
    assert_eq!(events.iter().filter(|e| uncollected(e)).count(), 2);
    assert_eq!(woken(events), [0, 1, 2]);
    assert_eq!(trace.counters.create_started, 1, "no creation replaced it");
    assert_eq!(trace.status.idle, 1);
    assert_eq!((trace.counters.checkouts, trace.counters.reused), (2, 1));
    // Two leases each: the second `Acquire` takes a lease instead, and the
    // lease served to waiter 1 comes back uncounted (the last op finds no
    // waiter).
    let trace = run(&shared(1, 2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(events.iter().filter(|e| uncollected(e)).count(), 1);
    assert_eq!((trace.status.leases, trace.status.waiting), (1, 0));
    assert_eq!((trace.counters.checkouts, trace.counters.reused), (3, 2));
}

/// With two waiters and two creations, the first failure goes to the oldest
/// waiter; the second waiter still gets the object of the other creation.
#[test]
fn create_failure_fails_the_oldest_waiter() {
    let ops = [
        Op::Acquire,       // waiter 0
        Op::Acquire,       // waiter 1
        Op::CreateFail(1), // the second ticket fails: oldest waiter (0) gets it
        Op::CreateOk(0),   // -> waiter 1
        Op::PollWaiter(1),
        Op::PollWaiter(0),
    ];
    let trace = run(&plain(2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(woken(events), vec![0, 1]);
    assert_eq!(
        collected(events),
        vec![
            (1, Outcome::Obj(0)),
            (0, Outcome::Create("create failed #1".into())),
        ]
    );
    assert!(events.contains(&Event::CreateFailed { delivered: true }));
}

/// A failed creation that no waiter counted on (a `min_idle` refill) is given
/// back and pauses the refill until `handle_timeout` at the back-off.
#[test]
fn refill_failure_is_given_back_and_backs_off() {
    let config = Config {
        min_idle: 1,
        ..plain(2)
    };
    let ops = [
        Op::CreateFail(0), // the refill fails: given back, paused 100 ms
        Op::Advance(99),
        Op::HandleTimeout, // still paused: no creation
        Op::FireTimeout,   // t = 100: resumes, one creation
        Op::CreateOk(0),
    ];
    let trace = run(&config, &ops);
    let events = &trace.events[..trace.teardown_from];
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| **e == Event::CreateStarted)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{events:?}");
    assert!(events.contains(&Event::CreateFailed { delivered: false }));
    assert_eq!(trace.status.idle, 1);
}

/// Shrinking with objects in use: idle ones close at once (oldest first),
/// the ones in use close when given back until the size fits.
#[test]
fn shrink_then_releases_close_the_surplus() {
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::Acquire,
        Op::Acquire,
        Op::CreateOk(0),
        Op::CreateOk(0),
        Op::CreateOk(0),
        Op::CreateOk(0), // objects 0..4 served to waiters 0..4
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::Release {
            index: 0,
            alive: true,
        }, // object 0 idle
        Op::Release {
            index: 0,
            alive: true,
        }, // object 1 idle
        Op::Resize(1), // size 4 -> 1: idle 0 then 1 close; still 2 in use
        Op::Release {
            index: 0,
            alive: true,
        }, // object 2: over size, closed
        Op::Release {
            index: 0,
            alive: true,
        }, // object 3: size now fits, idle
        Op::Acquire,   // gets object 3 back
    ];
    let trace = run(&plain(4), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(
        closed(events),
        vec![
            (0, CloseReason::Shrunk),
            (1, CloseReason::Shrunk),
            (2, CloseReason::Shrunk),
        ]
    );
    assert_eq!(events.last(), Some(&Event::Ready { uid: 3 }));
    assert_eq!(trace.status.max_size, 1);
}

/// `resize(0)` and a size below `min_idle` are refused and change nothing.
#[test]
fn refused_resizes_change_nothing() {
    let config = Config {
        min_idle: 2,
        ..plain(4)
    };
    let ops = [Op::Resize(0), Op::Resize(1), Op::Resize(2)];
    let trace = run(&config, &ops);
    let resized: Vec<&Event> = trace
        .events
        .iter()
        .filter(|e| matches!(e, Event::Resized { .. }))
        .collect();
    assert_eq!(
        resized,
        vec![
            &Event::Resized { to: 0, ok: false },
            &Event::Resized { to: 1, ok: false },
            &Event::Resized { to: 2, ok: true },
        ]
    );
    assert_eq!(trace.status.max_size, 2);
}

/// Close fails every queued waiter with `Closed`, in order; a creation that
/// finishes afterwards is closed, not pooled; acquire answers `Closed`.
#[test]
fn close_fails_waiters_and_nothing_goes_idle_after() {
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::Close,
        Op::CreateOk(0),
        Op::Acquire,
        Op::PollWaiter(1),
        Op::PollWaiter(0),
    ];
    let trace = run(&plain(3), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(woken(events), vec![0, 1]);
    assert_eq!(
        collected(events),
        vec![(1, Outcome::Closed), (0, Outcome::Closed)]
    );
    assert!(events.contains(&Event::Closed {
        uid: 0,
        reason: CloseReason::PoolClosed
    }));
    assert!(events.contains(&Event::AcquireClosed));
    assert_eq!(trace.status.idle, 0);
}

/// Regression (found by these tests, fixed in the machine since): an
/// `acquire` served from the idle list must start the `min_idle` refill that
/// taking the object out made due (invariant 3, "no stall").
#[test]
fn acquire_from_idle_starts_the_min_idle_refill() {
    let now = Instant::now();
    let limits = Limits {
        min_idle: 1,
        ..Limits::new(2)
    };
    let mut pool: PoolState<&str, (), ()> = PoolState::new(limits).unwrap();
    let Some(Action::Create(ticket)) = pool.poll_action() else {
        panic!("min_idle 1 starts one creation");
    };
    pool.handle_created(ticket, "a", now).unwrap();
    assert!(pool.poll_action().is_none());
    let Acquire::Ready(_a) = pool.acquire(now, |_| true, || ()) else {
        panic!("the idle object is handed out");
    };
    // Idle 0 < min_idle 1 and size 1 < max_size 2: a refill is due now.
    pool.check_invariants()
        .expect("invariant 3 holds after acquire");
    assert!(matches!(pool.poll_action(), Some(Action::Create(_))));
}

/// The same, as ops through the strict interpreter.
#[test]
fn acquire_from_idle_starts_the_min_idle_refill_ops() {
    let config = Config {
        min_idle: 1,
        ..plain(2)
    };
    let trace = run(&config, &[Op::CreateOk(0), Op::Acquire]);
    assert_eq!(trace.counters.create_started, 2, "the refill after acquire");
    assert_eq!(trace.status.creating, 1);
}

// ---------------------------------------------------------------------------
// Regression: a served waiter that is cancelled gives its object back *now*
//
// The machine once re-pooled such an object at the most recently used end of
// the idle list with its old `last_used`, so the list was no longer least
// recently used first and the idle reaper (which looks at the front) missed
// it. Now the object counts as given back at the cancel, and the list stays
// ordered.
// ---------------------------------------------------------------------------

#[test]
fn a_cancelled_waiters_object_is_given_back_now() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let limits = Limits {
        idle_timeout: Some(Duration::from_millis(10)),
        ..Limits::new(2)
    };
    let mut pool: PoolState<&str, (), u32> = PoolState::new(limits).unwrap();
    let Acquire::Queued(w0) = pool.acquire(t0, |_| true, || 0) else {
        panic!("an empty pool queues");
    };
    let Acquire::Queued(w1) = pool.acquire(t0, |_| true, || 1) else {
        panic!("an empty pool queues");
    };
    let tickets: Vec<_> = std::iter::from_fn(|| pool.poll_action())
        .filter_map(|a| match a {
            Action::Create(t) => Some(t),
            _ => None,
        })
        .collect();
    let [first, second] = <[_; 2]>::try_from(tickets).expect("two creations");
    pool.handle_created(first, "old", ms(0)).unwrap(); // served to waiter 0
    pool.handle_created(second, "new", ms(5)).unwrap(); // served to waiter 1
    while pool.poll_action().is_some() {}
    pool.cancel_waiter(w1, ms(5)).unwrap(); // "new" given back at 5 ms
    pool.cancel_waiter(w0, ms(7)).unwrap(); // "old" given back at 7 ms
    pool.check_invariants().unwrap();
    assert_eq!(
        pool.poll_timeout(),
        Some(ms(15)),
        "the least recently given back (\"new\", at 5 ms) is due first"
    );
    pool.handle_timeout(ms(15));
    match pool.poll_action() {
        Some(Action::Close { object, reason, .. }) => {
            assert_eq!((object, reason), ("new", CloseReason::IdleTimeout));
        }
        other => panic!("\"new\" should be closed at 15 ms, got {other:?}"),
    }
    assert!(pool.poll_action().is_none(), "\"old\" is due at 17 ms only");
    assert_eq!(pool.poll_timeout(), Some(ms(17)));
}

/// The same case as ops: the model expects the idle list ordered by last use.
#[test]
fn a_cancelled_waiters_object_is_given_back_now_ops() {
    let config = Config {
        idle_timeout_ms: Some(10),
        ..plain(2)
    };
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::CreateOk(0), // object 0 -> waiter 0 at 0 ms
        Op::Advance(5),
        Op::CreateOk(0),     // object 1 -> waiter 1 at 5 ms
        Op::CancelWaiter(1), // object 1 idle, given back at 5 ms
        Op::CancelWaiter(0), // object 0 idle, given back at 5 ms
        Op::Advance(10),
        Op::HandleTimeout,
    ];
    let trace = run(&config, &ops);
    assert_eq!(
        trace.status.idle, 0,
        "both idle past the timeout are reaped"
    );
}

// ---------------------------------------------------------------------------
// Shared pools: hand-written scenarios
// ---------------------------------------------------------------------------

fn ready(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ready { uid } => Some(*uid),
            _ => None,
        })
        .collect()
}

const RELEASE: Op = Op::Release {
    index: 0,
    alive: true,
};

/// Six waiters on two objects of three leases: two creations, each object
/// serving three waiters in queue order; a seventh waits for a lease, and
/// a lease given back goes to it on the same object.
#[test]
fn two_objects_of_three_leases_serve_six_waiters() {
    let mut ops = vec![Op::Acquire; 6]; // waiters 0..6: two creations
    ops.extend([Op::CreateOk(0), Op::CreateOk(0)]); // 0 -> 0, 1, 2; 1 -> 3, 4, 5
    ops.push(Op::Acquire); // waiter 6: both full, no creation
    ops.extend([Op::PollWaiter(0); 6]);
    ops.push(RELEASE); // a lease on object 0 -> waiter 6
    ops.push(Op::PollWaiter(0));
    ops.push(Op::Release {
        index: 3,
        alive: true,
    }); // a lease on object 1 (collected by waiter 3)
    ops.push(Op::Acquire); // object 1, the only one with room
    let trace = run(&shared(2, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(trace.counters.create_started, 2, "ceil(6 / 3) creations");
    assert_eq!(woken(events), (0..7).collect::<Vec<_>>());
    let objects: Vec<(u32, Outcome)> = [0, 0, 0, 1, 1, 1, 0]
        .into_iter()
        .zip(0..)
        .map(|(uid, w)| (w, Outcome::Obj(uid)))
        .collect();
    assert_eq!(collected(events), objects);
    assert_eq!(ready(events), [1]);
    let status = trace.status;
    assert_eq!((status.in_use, status.leases, status.waiting), (2, 6, 0));
}

/// A borrower goes to the lent object with the fewest leases; between
/// equally loaded ones, to the one lent first (the lowest key).
#[test]
fn a_borrower_goes_to_the_least_loaded_object_first_lent_on_ties() {
    let mut ops = vec![Op::Acquire; 7]; // three creations
    ops.extend([Op::CreateOk(0); 3]); // leases 3, 3, 1
    ops.extend([Op::PollWaiter(0); 7]);
    ops.extend([RELEASE, RELEASE]); // object 0 down to 1 lease
    ops.extend([Op::Acquire; 5]); // 0 (tie with 2), 2, 0, 2, then all full
    let trace = run(&shared(3, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(ready(events), [0, 2, 0, 2]);
    assert_eq!(trace.counters.create_started, 3);
    assert_eq!((trace.status.leases, trace.status.waiting), (9, 1));
}

/// `n` waiters on a shared pool of `k` leases start `ceil(n / k)` creations.
#[test]
fn n_waiters_start_ceil_n_over_k_creations() {
    for k in 1..=4 {
        for n in 0..=9 {
            let trace = run(&shared(8, k), &vec![Op::Acquire; n]);
            let expected = n.div_ceil(k).min(8) as u64;
            assert_eq!(
                trace.counters.create_started, expected,
                "{n} waiters, {k} leases"
            );
        }
    }
}

/// A failed creation fails the oldest waiter only if the creations left in
/// flight cannot serve every waiter (`max_leases` each).
#[test]
fn a_failed_shared_creation_fails_a_waiter_only_if_needed() {
    let config = Config {
        min_idle: 1,
        ..shared(4, 2)
    };
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::Acquire,       // three waiters: two creations, and one for min_idle
        Op::CreateFail(0), // two left serve four: given back, the refill pauses
        Op::CreateFail(0), // one left serves two: waiter 0 fails
        Op::CreateOk(0),   // -> waiters 1 and 2
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::PollWaiter(0),
    ];
    let trace = run(&config, &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(
        collected(events),
        vec![
            (0, Outcome::Create("create failed #2".into())),
            (1, Outcome::Obj(0)),
            (2, Outcome::Obj(0)),
        ]
    );
    assert!(events.contains(&Event::CreateFailed { delivered: false }));
    assert!(events.contains(&Event::CreateFailed { delivered: true }));
    assert_eq!(trace.counters.create_started, 3);
}

/// A lease given back dead retires its object while another lease is out:
/// newcomers go elsewhere (here a new object), and the object is closed as
/// dead with its last lease.
#[test]
fn a_dead_lease_retires_its_object_until_the_last_lease() {
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::CreateOk(0), // object 0 -> waiters 0 and 1
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::Release {
            index: 0,
            alive: false,
        }, // retired, one lease still out
        Op::Acquire,     // waiter 2: object 0 takes no lease, a creation starts
        Op::CreateOk(0), // object 1 -> waiter 2
        Op::PollWaiter(0),
        RELEASE, // the last lease on object 0: closed, dead
    ];
    let trace = run(&shared(2, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(closed(events), [(0, CloseReason::Dead)]);
    assert_eq!(
        events.last(),
        Some(&Event::Closed {
            uid: 0,
            reason: CloseReason::Dead
        })
    );
    assert_eq!(collected(events).last(), Some(&(2, Outcome::Obj(1))));
    assert_eq!((trace.status.in_use, trace.status.leases), (1, 1));
}

/// A lent object found dead by `is_alive` at acquire is retired: the
/// caller queues for a new object, and the dead one closes with its last lease.
#[test]
fn a_lent_object_found_dead_is_retired() {
    let ops = [
        Op::Acquire,
        Op::CreateOk(0), // object 0 -> waiter 0
        Op::PollWaiter(0),
        Op::DeadFlag(0), // object 0 is lent: dead from now on
        Op::Acquire,     // retired; waiter 1 queues, a creation starts
        Op::CreateOk(0),
        RELEASE, // object 0's only lease: closed, dead
    ];
    let trace = run(&shared(2, 2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert!(ready(events).is_empty());
    assert_eq!(closed(events), [(0, CloseReason::Dead)]);
    assert_eq!(trace.counters.create_started, 2);
}

/// Closing with leases out: waiters fail, served ones still collect their
/// lease, and the lent object is closed with its last lease only.
#[test]
fn close_with_leases_out_closes_the_object_with_its_last_lease() {
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::Acquire,
        Op::Acquire,     // waiters 0..4: two creations (3 leases each)
        Op::CreateOk(0), // object 0 -> waiters 0, 1, 2; waiter 3 waits on the other
        Op::PollWaiter(0),
        Op::PollWaiter(0), // waiters 0 and 1 hold leases, 2 is served, not collected
        Op::Close,         // waiter 3 fails; object 0 retired
        Op::Acquire,       // closed
        RELEASE,
        Op::PollWaiter(0), // waiter 2 collects its lease after the close
        Op::PollWaiter(0), // waiter 3 failed
        RELEASE,
        RELEASE, // the last lease: closed
    ];
    let trace = run(&shared(2, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(closed(events), [(0, CloseReason::PoolClosed)]);
    assert_eq!(
        events.last(),
        Some(&Event::Closed {
            uid: 0,
            reason: CloseReason::PoolClosed
        })
    );
    assert!(events.contains(&Event::AcquireClosed));
    assert_eq!(
        collected(events)[2..],
        [(2, Outcome::Obj(0)), (3, Outcome::Closed)]
    );
}

/// A served waiter cancelled before it collects its lease passes the lease
/// on to the oldest waiter, on the same object; no creation replaces it.
#[test]
fn a_served_shared_waiter_that_leaves_passes_its_lease_on() {
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::CreateOk(0),     // object 0 -> waiters 0 and 1
        Op::Acquire,         // waiter 2: full, and no room for a new object
        Op::CancelWaiter(0), // waiter 0's lease -> waiter 2
        Op::PollWaiter(0),
        Op::PollWaiter(0),
    ];
    let trace = run(&shared(1, 2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(woken(events), [0, 1, 2]);
    assert_eq!(
        collected(events),
        [(1, Outcome::Obj(0)), (2, Outcome::Obj(0))]
    );
    assert_eq!(trace.counters.create_started, 1);
    assert_eq!((trace.status.leases, trace.counters.checkouts), (2, 2));
}

/// Detaching a lease: the borrower keeps its handle; the object takes no
/// new lease and leaves with its last one, counted as detached, not
/// closed, and its slot goes to a new object.
#[test]
fn a_detached_lease_takes_its_object_out_with_the_last_lease() {
    let ops = [
        Op::Acquire,
        Op::CreateOk(0), // object 0 -> waiter 0
        Op::PollWaiter(0),
        Op::Acquire,   // a second lease on object 0
        Op::Detach(0), // object 0 retired
        Op::Acquire,   // waiter 1 queues (size 1 of 1): no creation yet
        RELEASE,       // the last lease: object 0 leaves, a creation starts
        Op::CreateOk(0),
        Op::PollWaiter(0),
    ];
    let trace = run(&shared(1, 2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(ready(events), [0]);
    assert!(closed(events).is_empty());
    assert_eq!(trace.counters.detached, 1);
    assert_eq!(collected(events).last(), Some(&(1, Outcome::Obj(1))));
}

// ---------------------------------------------------------------------------
// Shared pools of one lease: exactly an exclusive pool
//
// The two cases below are where the machine and the documented behaviour
// parted when the model first covered shared pools (see
// `one_lease_each_acts_exclusive` for the random search).
// ---------------------------------------------------------------------------

/// Runs `ops` on an exclusive pool and on a shared pool of one lease each,
/// and checks that they agree (each run is checked against the model).
fn same_as_exclusive(config: Config, ops: &[Op]) -> ops::Trace {
    let exclusive = run(&config, ops);
    let one_lease = run(
        &Config {
            max_leases: Some(1),
            ..config
        },
        ops,
    );
    assert_eq!(exclusive.events, one_lease.events);
    assert_eq!(exclusive.status, one_lease.status);
    assert_eq!(exclusive.counters, one_lease.counters);
    one_lease
}

/// A lease detached after `close` leaves the pool detached, not closed:
/// the pool must not close an object a borrower took out, whatever retired
/// it first (here the close).
#[test]
fn a_lease_detached_after_close_is_not_closed() {
    let ops = [
        Op::Acquire,
        Op::CreateOk(0),
        Op::PollWaiter(0),
        Op::Close,
        Op::Detach(0),
    ];
    let trace = same_as_exclusive(plain(1), &ops);
    assert_eq!((trace.counters.detached, trace.counters.closed), (1, 0));
    // The same with two leases out: the other one's return does not close it.
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::CreateOk(0),
        Op::PollWaiter(0),
        Op::PollWaiter(0),
        Op::Close,
        Op::Detach(0),
        RELEASE,
    ];
    let trace = run(&shared(1, 2), &ops);
    assert_eq!((trace.counters.detached, trace.counters.closed), (1, 0));
}

/// A lease served to a waiter that leaves before collecting it is not a
/// checkout: the object's `checkouts` and the `reused` counter do not count
/// it, as in an exclusive pool.
#[test]
fn a_lease_never_collected_is_not_counted() {
    let ops = [
        Op::Acquire,
        Op::CreateOk(0),     // object 0 -> waiter 0
        Op::Acquire,         // waiter 1
        Op::CancelWaiter(0), // object 0 -> waiter 1
        Op::PollWaiter(0),
    ];
    let trace = same_as_exclusive(plain(1), &ops);
    assert_eq!((trace.counters.checkouts, trace.counters.reused), (1, 0));
}

// ---------------------------------------------------------------------------
// Refusals: `handle_create_refused` and its back-off
// ---------------------------------------------------------------------------

/// The `until` of every `Acquire::Refused`, in order.
fn acquire_refused(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AcquireRefused { until } => Some(*until),
            _ => None,
        })
        .collect()
}

/// The waiters woken by the step that gave the first `report` (a
/// `CreateFailed` or `CreateRefused` event): its wakes follow it at once.
fn woken_by(events: &[Event], report: Event) -> Vec<u32> {
    let at = events
        .iter()
        .position(|e| *e == report)
        .unwrap_or_else(|| panic!("no {report:?} in {events:?}"));
    events[at + 1..]
        .iter()
        .map_while(|e| match e {
            Event::Woken { waiter } => Some(*waiter),
            _ => None,
        })
        .collect()
}

fn refused(until: u64) -> Outcome {
    Outcome::Refused { until }
}

/// (a) Five waiters on an exclusive pool of two: two creations in flight.
/// One is refused at 20 ms: the four waiters the other does not cover fail
/// at once, the oldest with the error and the next three `Refused` until the
/// end of the 500 ms back-off; the fifth still gets the other creation's
/// object. That success ends the back-off: the next caller queues.
#[test]
fn a_refusal_fails_every_uncovered_waiter_at_once() {
    let mut ops = vec![Op::Acquire; 5]; // waiters 0..5, two creations
    ops.extend([Op::Advance(20), Op::CreateRefused(0), Op::CreateOk(0)]);
    ops.extend([Op::PollWaiter(0); 5]);
    ops.push(Op::Acquire); // still at 20 ms
    let trace = run(&plain(2), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(
        events[events.len() - 2..],
        [Event::Queued { waiter: 5 }, Event::CreateStarted]
    );
    let delivered = Event::CreateRefused { delivered: true };
    assert_eq!(woken_by(events, delivered), [0, 1, 2, 3], "{events:?}");
    assert_eq!(
        collected(events),
        [
            (0, Outcome::Create("create refused #1".into())),
            (1, refused(520)),
            (2, refused(520)),
            (3, refused(520)),
            (4, Outcome::Obj(0)),
        ]
    );
    let c = trace.counters;
    assert_eq!((c.create_started, c.refused, c.create_failed), (3, 1, 1));
}

/// (b) The same in a shared pool of three leases, capped at two objects:
/// seven waiters, two creations (six covered). One refused: the one left
/// in flight covers three waiters, the four oldest fail at once.
#[test]
fn a_refusal_in_a_shared_pool_keeps_max_leases_waiters_per_creation() {
    let mut ops = vec![Op::Acquire; 7];
    ops.extend([Op::Advance(10), Op::CreateRefused(1), Op::CreateOk(0)]);
    ops.extend([Op::PollWaiter(0); 7]);
    let trace = run(&shared(2, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    let delivered = Event::CreateRefused { delivered: true };
    assert_eq!(woken_by(events, delivered), [0, 1, 2, 3], "{events:?}");
    assert_eq!(
        collected(events),
        [
            (0, Outcome::Create("create refused #1".into())),
            (1, refused(510)),
            (2, refused(510)),
            (3, refused(510)),
            (4, Outcome::Obj(0)),
            (5, Outcome::Obj(0)),
            (6, Outcome::Obj(0)),
        ]
    );
    assert_eq!(trace.counters.create_started, 2);
    assert_eq!((trace.status.in_use, trace.status.leases), (1, 3));
}

/// (c) During the back-off a caller that finds nothing ready is refused
/// with its end, and not queued; at the end it queues and a creation starts.
#[test]
fn acquire_during_the_back_off_is_refused_until_its_end() {
    let ops = [
        Op::Acquire, // waiter 0, a creation
        Op::Advance(100),
        Op::CreateRefused(0), // waiter 0 fails; back-off until 600 ms
        Op::Advance(200),
        Op::Acquire, // 300 ms: refused
        Op::Advance(255),
        Op::Advance(44),
        Op::Acquire, // 599 ms: refused
        Op::Advance(1),
        Op::Acquire, // 600 ms: over; waiter 1 queues, a creation starts
        Op::CreateOk(0),
        Op::PollWaiter(0),
        Op::PollWaiter(0),
    ];
    let trace = run(&plain(1), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(acquire_refused(events), [600, 600]);
    let last_refused = events
        .iter()
        .rposition(|e| matches!(e, Event::AcquireRefused { .. }))
        .expect("refused");
    assert_eq!(
        events[last_refused + 1..last_refused + 3],
        [Event::Queued { waiter: 1 }, Event::CreateStarted],
        "the refused callers took no waiter number"
    );
    assert_eq!(
        collected(events),
        [
            (0, Outcome::Create("create refused #1".into())),
            (1, Outcome::Obj(0)),
        ]
    );
    assert_eq!(trace.counters.create_started, 2);
}

/// (c) The same back-off ended by the driver's timer: `poll_timeout` is its
/// end, and `handle_timeout` then ends it.
#[test]
fn the_timer_ends_the_back_off() {
    let ops = [
        Op::Acquire,
        Op::CreateRefused(0), // back-off until 500 ms
        Op::Acquire,          // refused
        Op::FireTimeout,      // to 500 ms: over
        Op::Acquire,          // queues, a creation starts
    ];
    let trace = run(&plain(1), &ops);
    let events = &trace.events[..trace.teardown_from];
    assert_eq!(acquire_refused(events), [500]);
    assert_eq!(
        events[events.len() - 2..],
        [Event::Queued { waiter: 1 }, Event::CreateStarted]
    );
}

/// Rounds of: a caller queues, its creation is refused, the next caller is
/// refused (its `until` recorded), the timer ends the back-off. Returns the
/// length of each back-off, in ms.
fn refusal_rounds(config: Config, rounds: usize, then: &[Op]) -> Vec<u64> {
    let round = [
        Op::Acquire,
        Op::CreateRefused(0),
        Op::Acquire,
        Op::FireTimeout,
    ];
    let mut ops = round.repeat(rounds);
    ops.extend_from_slice(then);
    let trace = run(&config, &ops);
    let untils = acquire_refused(&trace.events[..trace.teardown_from]);
    // Each refusal came at the end of the back-off before it (the timer).
    let starts = std::iter::once(0).chain(untils.iter().copied());
    untils.iter().zip(starts).map(|(u, s)| u - s).collect()
}

/// (d) Each refusal in a row doubles the back-off, up to 30 s; a creation
/// that succeeds resets it to 0.5 s.
#[test]
fn the_back_off_doubles_up_to_30_s_and_a_success_resets_it() {
    let then = [
        Op::Acquire,          // waiter 8: a creation
        Op::CreateOk(0),      // served: the back-off resets
        Op::Acquire,          // waiter 9: nothing idle, a second creation
        Op::CreateRefused(0), // 0.5 s again
        Op::Acquire,          // refused
    ];
    let pauses = refusal_rounds(plain(2), 8, &then);
    let s = 1000;
    assert_eq!(
        pauses,
        [s / 2, s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, s / 2]
    );
}

/// A configured first back-off: doubled up to 30 s, or kept if longer.
#[test]
fn a_configured_back_off_doubles_up_to_the_longer_of_it_and_30_s() {
    let config = |ms| Config {
        refusal_backoff_ms: Some(ms),
        ..plain(1)
    };
    assert_eq!(refusal_rounds(config(10), 4, &[]), [10, 20, 40, 80]);
    assert_eq!(
        refusal_rounds(config(20_000), 3, &[]),
        [20_000, 30_000, 30_000]
    );
    assert_eq!(
        refusal_rounds(config(40_000), 3, &[]),
        [40_000, 40_000, 40_000]
    );
}

/// (e) A refused `min_idle` refill: the error is given back, no refill
/// starts before the back-off ends (the timer at 500 ms), and the refill's
/// own back-off was not touched (a plain failure then pauses it 100 ms, not
/// 200 ms).
#[test]
fn the_min_idle_refill_waits_for_the_back_off() {
    let config = Config {
        min_idle: 1,
        ..plain(2)
    };
    let ops = [
        Op::CreateRefused(0), // the refill: given back, back-off until 500 ms
        Op::Acquire,          // nothing idle: refused
        Op::Advance(250),
        Op::HandleTimeout,
        Op::Advance(249),
        Op::HandleTimeout, // 499 ms: no refill yet
        Op::Advance(1),
        Op::HandleTimeout, // 500 ms: the refill starts
        Op::CreateFail(0), // given back: the refill pauses 100 ms
        Op::Advance(100),
        Op::HandleTimeout, // 600 ms: the refill starts again
        Op::CreateOk(0),
    ];
    let trace = run(&config, &ops);
    assert_eq!(
        trace.events[..trace.teardown_from],
        [
            Event::CreateStarted, // the new pool's refill
            Event::CreateRefused { delivered: false },
            Event::AcquireRefused { until: 500 },
            Event::CreateStarted, // at 500 ms
            Event::CreateFailed { delivered: false },
            Event::CreateStarted, // at 600 ms
            Event::Created { uid: 0 },
        ]
    );
    assert_eq!(trace.status.idle, 1);
    assert_eq!(trace.counters.refused, 1);
}

/// (f) A plain failure during a back-off fails every waiter left uncovered,
/// not only the oldest: no creation will start for the others. Shared
/// pool of three leases, seven waiters, three creations.
#[test]
fn a_failure_during_the_back_off_fails_every_uncovered_waiter() {
    let mut ops = vec![Op::Acquire; 7];
    ops.extend([
        Op::Advance(5),
        Op::CreateRefused(0), // two left cover six: waiter 0 fails
        Op::CreateFail(0),    // one left covers three: waiters 1, 2 and 3 fail
        Op::CreateOk(0),      // waiters 4, 5 and 6
    ]);
    ops.extend([Op::PollWaiter(0); 7]);
    let trace = run(&shared(3, 3), &ops);
    let events = &trace.events[..trace.teardown_from];
    let failed = Event::CreateFailed { delivered: true };
    assert_eq!(woken_by(events, failed), [1, 2, 3], "{events:?}");
    assert_eq!(
        collected(events),
        [
            (0, Outcome::Create("create refused #1".into())),
            (1, Outcome::Create("create failed #2".into())),
            (2, refused(505)),
            (3, refused(505)),
            (4, Outcome::Obj(0)),
            (5, Outcome::Obj(0)),
            (6, Outcome::Obj(0)),
        ]
    );
    let c = trace.counters;
    assert_eq!((c.create_started, c.refused, c.create_failed), (3, 1, 2));
}
