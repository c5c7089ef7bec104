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

fn config() -> impl Strategy<Value = Config> {
    (1usize..=8)
        .prop_flat_map(|max_size| {
            (
                Just(max_size),
                prop_oneof![1..=max_size + 1, Just(usize::MAX)],
                0..=max_size,
                proptest::option::of(1u64..=300),
                proptest::option::of(1u64..=600),
            )
        })
        .prop_map(
            |(max_size, max_creating, min_idle, idle_timeout_ms, max_lifetime_ms)| Config {
                max_size,
                max_creating,
                min_idle,
                idle_timeout_ms,
                max_lifetime_ms,
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
        5 => (any::<u8>(), prop::bool::weighted(0.8))
            .prop_map(|(index, alive)| Op::Release { index, alive }),
        1 => any::<u8>().prop_map(Op::Detach),
        5 => any::<u8>().prop_map(Op::CreateOk),
        2 => any::<u8>().prop_map(Op::CreateFail),
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
    assert!(ops.is_empty());
    // Any byte pattern gives limits the machine accepts.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..500 {
        let data: Vec<u8> = (0..16).map(|_| rng.u8(..)).collect();
        let (config, _) = ops::from_bytes(&data).expect("decodes");
        assert!((1..=8).contains(&config.max_size));
        assert!(config.min_idle <= config.max_size);
        assert!(config.limits().validate().is_ok(), "{config:?}");
    }
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
