//! Unit tests of the state machine: no runtime, a virtual clock.

use super::*;

type State = PoolState<u32, &'static str, u32>;

fn t0() -> Instant {
    // One base instant for the whole test; offsets make the virtual clock.
    Instant::now()
}

fn drain(state: &mut State) -> Vec<Action<u32, u32>> {
    let actions: Vec<_> = std::iter::from_fn(|| state.poll_action()).collect();
    state.check_invariants().unwrap();
    actions
}

fn tickets(actions: Vec<Action<u32, u32>>) -> Vec<CreateTicket> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Create(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn ready(a: Acquire<u32>) -> Checkout<u32> {
    match a {
        Acquire::Ready(c) => c,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn queued(a: Acquire<u32>) -> WaiterId {
    match a {
        Acquire::Queued(w) => w,
        other => panic!("expected Queued, got {other:?}"),
    }
}

fn served(state: &mut State, w: WaiterId) -> Result<Checkout<u32>, Failure<&'static str>> {
    match state.poll_waiter(w, |_| ()).unwrap() {
        WaitPoll::Ready(r) => r,
        WaitPoll::Pending(_) => panic!("expected the waiter to be served"),
    }
}

/// One object made and idle in a fresh pool of `limits`.
fn with_idle(limits: Limits, now: Instant) -> State {
    let mut s = State::new(limits).unwrap();
    let w = queued(s.acquire(now, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 1, now).unwrap();
    let c = served(&mut s, w).unwrap();
    s.release(c, now, true).unwrap();
    drain(&mut s);
    s
}

#[test]
fn zero_sizes_are_config_errors() {
    assert_eq!(
        State::new(Limits::new(0)).unwrap_err(),
        ConfigError::ZeroMaxSize
    );
    let l = Limits {
        max_creating: 0,
        ..Limits::new(2)
    };
    assert_eq!(State::new(l).unwrap_err(), ConfigError::ZeroMaxCreating);
    let l = Limits {
        min_idle: 3,
        ..Limits::new(2)
    };
    assert!(matches!(
        State::new(l),
        Err(ConfigError::MinIdleAboveMaxSize { .. })
    ));
    let l = Limits {
        idle_timeout: Some(Duration::ZERO),
        ..Limits::new(2)
    };
    assert_eq!(
        State::new(l).unwrap_err(),
        ConfigError::ZeroDuration("idle_timeout")
    );
    let l = Limits {
        refusal_backoff: Duration::ZERO,
        ..Limits::new(2)
    };
    assert_eq!(
        State::new(l).unwrap_err(),
        ConfigError::ZeroDuration("refusal_backoff")
    );
    let mut s = State::new(Limits::new(2)).unwrap();
    assert_eq!(s.resize(0), Err(ConfigError::ZeroMaxSize));
    assert_eq!(s.limits().max_size, 2);
}

#[test]
fn a_miss_queues_and_asks_for_one_creation() {
    let now = t0();
    let mut s = State::new(Limits::new(2)).unwrap();
    let w = queued(s.acquire(now, |_| true, || 7));
    let ts = tickets(drain(&mut s));
    assert_eq!(ts.len(), 1);
    assert_eq!(s.status().creating, 1);
    assert_eq!(s.status().waiting, 1);
    let t = ts.into_iter().next().unwrap();
    s.handle_created(t, 10, now).unwrap();
    let actions = drain(&mut s);
    assert!(matches!(actions.as_slice(), [Action::Wake(7)]));
    let c = served(&mut s, w).unwrap();
    assert_eq!(*c.object(), 10);
    assert_eq!(s.status().in_use, 1);
    assert_eq!(s.counters().reused, 0);
}

#[test]
fn release_goes_to_idle_then_back_out() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    assert_eq!(s.status().idle, 1);
    let c = ready(s.acquire(now, |_| true, || 0));
    assert_eq!(*c.object(), 1);
    assert_eq!(c.meta().checkouts, 2);
    assert_eq!(s.counters().reused, 1);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let w1 = queued(s.acquire(now, |_| true, || 1));
    let w2 = queued(s.acquire(now, |_| true, || 2));
    assert!(
        drain(&mut s).is_empty(),
        "the pool is full: nothing to create"
    );
    s.release(held, now, true).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [Action::Wake(1)]));
    // A newcomer does not overtake w2, even though w1 has not collected yet.
    let w3 = queued(s.acquire(now, |_| true, || 3));
    let c = served(&mut s, w1).unwrap();
    s.release(c, now, true).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [Action::Wake(2)]));
    let c = served(&mut s, w2).unwrap();
    s.release(c, now, true).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [Action::Wake(3)]));
    assert!(served(&mut s, w3).is_ok());
}

#[test]
fn cancelling_from_the_middle_keeps_the_order() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let ws: Vec<_> = (1..=5)
        .map(|i| queued(s.acquire(now, |_| true, || i)))
        .collect();
    let mut ws = ws.into_iter();
    let (w1, w2, w3, w4, w5) = (
        ws.next().unwrap(),
        ws.next().unwrap(),
        ws.next().unwrap(),
        ws.next().unwrap(),
        ws.next().unwrap(),
    );
    s.cancel_waiter(w3, now).unwrap();
    s.cancel_waiter(w1, now).unwrap();
    assert_eq!(s.status().waiting, 3);
    drain(&mut s);
    let mut order = Vec::new();
    let mut obj = held;
    for w in [w2, w4, w5] {
        s.release(obj, now, true).unwrap();
        match drain(&mut s).as_slice() {
            [Action::Wake(i)] => order.push(*i),
            other => panic!("{other:?}"),
        }
        obj = served(&mut s, w).unwrap();
    }
    assert_eq!(order, vec![2, 4, 5]);
}

#[test]
fn a_served_waiter_that_leaves_passes_its_object_on() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let w1 = queued(s.acquire(now, |_| true, || 1));
    let w2 = queued(s.acquire(now, |_| true, || 2));
    s.release(held, now, true).unwrap();
    drain(&mut s);
    s.cancel_waiter(w1, now).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [Action::Wake(2)]));
    assert_eq!(*served(&mut s, w2).unwrap().object(), 1);
}

/// A served waiter that leaves after its outcome was collected for it
/// (`release_uncollected`) ends as one that leaves before (`cancel_waiter`):
/// the same next waiter served with the same object and meta, the same
/// status and counters, in an exclusive pool and in shared ones.
#[test]
fn an_uncollected_checkout_given_back_is_a_cancel_before_collecting() {
    let now = t0();
    for max_leases in [None, Some(1), Some(2)] {
        let run = |collect_first: bool| {
            // One idle object, used once already.
            let mut s = match max_leases {
                None => State::new(Limits::new(1)).unwrap(),
                Some(k) => shared(1, k),
            };
            let w = queued(s.acquire(now, |_| true, || 0));
            let t = tickets(drain(&mut s)).pop().unwrap();
            s.handle_created(t, 10, now).unwrap();
            let first = served(&mut s, w).unwrap();
            s.release(first, now, true).unwrap();
            // Every lease taken, two waiters behind; one lease comes back.
            let mut held: Vec<_> = (0..max_leases.unwrap_or(1))
                .map(|_| ready(s.acquire(now, |_| true, || 0)))
                .collect();
            let w1 = queued(s.acquire(now, |_| true, || 1));
            let w2 = queued(s.acquire(now, |_| true, || 2));
            s.release(held.pop().unwrap(), now, true).unwrap();
            drain(&mut s);
            if collect_first {
                let collected = served(&mut s, w1).unwrap();
                s.release_uncollected(collected, now).unwrap();
            } else {
                s.cancel_waiter(w1, now).unwrap();
            }
            assert_eq!(wakes(&drain(&mut s)), 1, "passed on to w2");
            let next = served(&mut s, w2).unwrap();
            let seen = (*next.object(), *next.meta(), next.is_shared());
            for c in held.into_iter().chain([next]) {
                s.release(c, now, true).unwrap();
            }
            drain(&mut s);
            (seen, s.status(), s.counters())
        };
        assert_eq!(run(true), run(false), "max_leases {max_leases:?}");
    }
}

/// Regression (review): in a shared pool, a lease collected after the one
/// given back uncollected kept its count as a reuse, though with that one
/// cancelled before collecting it would have been the object's first use.
#[test]
fn an_uncollected_first_lease_takes_the_reuse_count_with_it() {
    let now = t0();
    let mut s = shared(1, 2);
    let a = queued(s.acquire(now, |_| true, || 0));
    let b = queued(s.acquire(now, |_| true, || 1));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 10, now).unwrap();
    drain(&mut s);
    let collected_a = served(&mut s, a).unwrap();
    let collected_b = served(&mut s, b).unwrap();
    assert_eq!((s.counters().checkouts, s.counters().reused), (2, 1));
    s.release_uncollected(collected_a, now).unwrap();
    drain(&mut s);
    assert_eq!((s.counters().checkouts, s.counters().reused), (1, 0));
    s.release(collected_b, now, true).unwrap();
    drain(&mut s);
    let again = ready(s.acquire(now, |_| true, || 2));
    assert_eq!(again.meta().checkouts, 2, "collected once before, by b");
    assert_eq!((s.counters().checkouts, s.counters().reused), (2, 1));
}

#[test]
fn a_served_waiter_that_leaves_alone_returns_the_object_to_idle() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let w1 = queued(s.acquire(now, |_| true, || 1));
    s.release(held, now, true).unwrap();
    drain(&mut s);
    assert_eq!(s.status().in_use, 1);
    s.cancel_waiter(w1, now).unwrap();
    drain(&mut s);
    assert_eq!((s.status().idle, s.status().in_use), (1, 0));
}

#[test]
fn dead_idle_objects_are_closed_and_replaced() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let w = queued(s.acquire(now, |_| false, || 9));
    let actions = drain(&mut s);
    assert!(
        matches!(
            actions.as_slice(),
            [
                Action::Close {
                    object: 1,
                    reason: CloseReason::Dead,
                    ..
                },
                Action::Create(_)
            ]
        ),
        "{actions:?}"
    );
    assert_eq!(
        s.status().size,
        1,
        "the dead one's slot went to the new creation"
    );
    let _ = w;
}

#[test]
fn a_dead_object_given_back_frees_its_slot_for_a_waiter() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let w = queued(s.acquire(now, |_| true, || 1));
    s.release(held, now, false).unwrap();
    let actions = drain(&mut s);
    assert!(
        matches!(
            actions.as_slice(),
            [
                Action::Close {
                    reason: CloseReason::Dead,
                    ..
                },
                Action::Create(_)
            ]
        ),
        "{actions:?}"
    );
    let _ = w;
}

#[test]
fn a_failed_creation_fails_the_oldest_waiter_and_lets_the_next_try() {
    let now = t0();
    let limits = Limits {
        max_creating: 1,
        ..Limits::new(4)
    };
    let mut s = State::new(limits).unwrap();
    let w1 = queued(s.acquire(now, |_| true, || 1));
    let w2 = queued(s.acquire(now, |_| true, || 2));
    let mut ts = tickets(drain(&mut s));
    assert_eq!(ts.len(), 1, "capped at one creation");
    assert_eq!(
        s.handle_create_failed(ts.pop().unwrap(), "refused", now)
            .unwrap(),
        None
    );
    let actions = drain(&mut s);
    assert!(
        matches!(actions.as_slice(), [Action::Wake(1), Action::Create(_)]),
        "{actions:?}"
    );
    assert_eq!(served(&mut s, w1).unwrap_err(), Failure::Create("refused"));
    assert_eq!(s.status().waiting, 1);
    let _ = w2;
}

#[test]
fn a_failed_refill_backs_off_and_resumes() {
    let now = t0();
    let limits = Limits {
        min_idle: 1,
        ..Limits::new(2)
    };
    let mut s = State::new(limits).unwrap();
    let mut ts = tickets(drain(&mut s));
    assert_eq!(ts.len(), 1, "prefill");
    assert_eq!(
        s.handle_create_failed(ts.pop().unwrap(), "down", now)
            .unwrap(),
        Some("down")
    );
    assert!(drain(&mut s).is_empty(), "no retry before the back-off");
    assert_eq!(s.poll_timeout(), Some(now + REFILL_BACKOFF_MIN));
    s.handle_timeout(now + REFILL_BACKOFF_MIN);
    let mut ts = tickets(drain(&mut s));
    assert_eq!(ts.len(), 1, "retried");
    s.handle_create_failed(ts.pop().unwrap(), "down", now + REFILL_BACKOFF_MIN)
        .unwrap();
    assert_eq!(
        s.poll_timeout(),
        Some(now + REFILL_BACKOFF_MIN * 3),
        "the back-off doubled"
    );
}

#[test]
fn close_fails_every_waiter_and_closes_idle_and_later_returns() {
    let now = t0();
    let mut s = with_idle(Limits::new(2), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let w1 = queued(s.acquire(now, |_| true, || 1));
    let t = tickets(drain(&mut s)).pop().unwrap();
    let w2 = queued(s.acquire(now, |_| true, || 2));
    drain(&mut s);
    s.close();
    let actions = drain(&mut s);
    assert!(
        matches!(actions.as_slice(), [Action::Wake(1), Action::Wake(2)]),
        "{actions:?}"
    );
    assert_eq!(served(&mut s, w1).unwrap_err(), Failure::Closed);
    assert_eq!(served(&mut s, w2).unwrap_err(), Failure::Closed);
    s.release(held, now, true).unwrap();
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Action::Close {
            reason: CloseReason::PoolClosed,
            ..
        }]
    ));
    s.handle_created(t, 5, now).unwrap();
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Action::Close { object: 5, .. }]
    ));
    assert!(matches!(s.acquire(now, |_| true, || 3), Acquire::Closed));
    assert_eq!(s.status().size, 0);
    s.close();
    assert!(drain(&mut s).is_empty(), "closing twice does nothing more");
}

#[test]
fn idle_timeout_reaps_the_least_recently_used_down_to_min_idle() {
    let now = t0();
    let limits = Limits {
        idle_timeout: Some(Duration::from_secs(10)),
        min_idle: 1,
        ..Limits::new(3)
    };
    let mut s = State::new(limits).unwrap();
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 1, now).unwrap();
    // Two more objects, returned later.
    let a = ready(s.acquire(now, |_| true, || 0));
    let w = queued(s.acquire(now, |_| true, || 0));
    let mut ts = tickets(drain(&mut s));
    s.handle_created(ts.pop().unwrap(), 2, now).unwrap();
    drain(&mut s);
    let b = served(&mut s, w).unwrap();
    s.release(a, now + Duration::from_secs(1), true).unwrap();
    s.release(b, now + Duration::from_secs(2), true).unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(11)));
    s.handle_timeout(now + Duration::from_secs(11));
    let actions = drain(&mut s);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Close {
                object: 1,
                reason: CloseReason::IdleTimeout,
                ..
            }]
        ),
        "{actions:?}"
    );
    s.handle_timeout(now + Duration::from_secs(100));
    assert!(drain(&mut s).is_empty(), "min_idle keeps the last one");
    assert_eq!(s.status().idle, 1);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn an_object_past_its_lifetime_is_never_handed_out() {
    let now = t0();
    let limits = Limits {
        max_lifetime: Some(Duration::from_secs(60)),
        ..Limits::new(1)
    };
    let mut s = with_idle(limits, now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(60)));
    let later = now + Duration::from_secs(61);
    let _w = queued(s.acquire(later, |_| true, || 0));
    let actions = drain(&mut s);
    assert!(
        matches!(
            actions.as_slice(),
            [
                Action::Close {
                    reason: CloseReason::MaxLifetime,
                    ..
                },
                Action::Create(_)
            ]
        ),
        "{actions:?}"
    );
}

#[test]
fn the_lifetime_sweep_closes_old_idle_objects_behind_young_ones() {
    let now = t0();
    let limits = Limits {
        max_lifetime: Some(Duration::from_secs(60)),
        ..Limits::new(2)
    };
    let mut s = with_idle(limits, now); // object 1, created at 0
    let old = ready(s.acquire(now, |_| true, || 0));
    let w = queued(s.acquire(now + Duration::from_secs(30), |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 2, now + Duration::from_secs(30))
        .unwrap();
    drain(&mut s);
    let young = served(&mut s, w).unwrap();
    // Give back the young one last: the old one sits at the front... and the
    // young one at the back, so the sweep must look past the back.
    s.release(old, now + Duration::from_secs(40), true).unwrap();
    s.release(young, now + Duration::from_secs(50), true)
        .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(60)));
    s.handle_timeout(now + Duration::from_secs(60));
    let actions = drain(&mut s);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Close {
                object: 1,
                reason: CloseReason::MaxLifetime,
                ..
            }]
        ),
        "{actions:?}"
    );
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(90)));
}

#[test]
fn shrinking_closes_idle_now_and_in_use_on_return() {
    let now = t0();
    let mut s = State::new(Limits::new(3)).unwrap();
    let ws: Vec<_> = (0..3)
        .map(|i| queued(s.acquire(now, |_| true, || i)))
        .collect();
    for (i, t) in tickets(drain(&mut s)).into_iter().enumerate() {
        s.handle_created(t, i as u32, now).unwrap();
    }
    drain(&mut s);
    let mut held: Vec<_> = ws.into_iter().map(|w| served(&mut s, w).unwrap()).collect();
    s.release(held.pop().unwrap(), now, true).unwrap();
    drain(&mut s);
    s.resize(1).unwrap();
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Action::Close {
            reason: CloseReason::Shrunk,
            ..
        }]
    ));
    assert_eq!(s.status().size, 2);
    s.release(held.pop().unwrap(), now, true).unwrap();
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Action::Close {
            reason: CloseReason::Shrunk,
            ..
        }]
    ));
    s.release(held.pop().unwrap(), now, true).unwrap();
    assert!(drain(&mut s).is_empty());
    assert_eq!((s.status().size, s.status().idle), (1, 1));
}

#[test]
fn growing_starts_creations_for_waiters() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let _held = ready(s.acquire(now, |_| true, || 0));
    let _w = queued(s.acquire(now, |_| true, || 1));
    assert!(drain(&mut s).is_empty());
    s.resize(2).unwrap();
    assert_eq!(tickets(drain(&mut s)).len(), 1);
}

#[test]
fn retain_closes_the_refused() {
    let now = t0();
    let mut s = with_idle(Limits::new(2), now);
    assert_eq!(s.retain(|o, _| *o != 1), 1);
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Action::Close {
            reason: CloseReason::Retain,
            ..
        }]
    ));
    assert_eq!(s.status().size, 0);
}

#[test]
fn detach_frees_the_slot() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let _w = queued(s.acquire(now, |_| true, || 1));
    assert_eq!(s.detach(held).unwrap(), 1);
    assert_eq!(tickets(drain(&mut s)).len(), 1);
    assert_eq!(s.counters().detached, 1);
}

#[test]
fn tokens_of_another_pool_are_refused_and_given_back() {
    let now = t0();
    let mut a = with_idle(Limits::new(1), now);
    let mut b = with_idle(Limits::new(1), now);
    let from_a = ready(a.acquire(now, |_| true, || 0));
    let back = b.release(from_a, now, true).unwrap_err().0;
    assert_eq!(b.status().idle, 1, "b unchanged");
    a.release(back, now, true).unwrap();
    assert_eq!(a.status().idle, 1);
    let wa = queued({
        let _h = ready(a.acquire(now, |_| true, || 0));
        a.acquire(now, |_| true, || 1)
    });
    assert!(b.cancel_waiter(wa, now).is_err());
}

#[test]
fn ten_thousand_waiters_cancel_from_the_middle() {
    let now = t0();
    let mut s = with_idle(Limits::new(1), now);
    let held = ready(s.acquire(now, |_| true, || 0));
    let mut ws: Vec<_> = (0..10_000)
        .map(|i| Some(queued(s.acquire(now, |_| true, || i))))
        .collect();
    for i in (0..10_000).filter(|i| i % 3 == 1) {
        s.cancel_waiter(ws[i].take().unwrap(), now).unwrap();
    }
    s.check_invariants().unwrap();
    s.release(held, now, true).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [Action::Wake(0)]));
    let c = served(&mut s, ws[0].take().unwrap()).unwrap();
    s.release(c, now, true).unwrap();
    assert!(
        matches!(drain(&mut s).as_slice(), [Action::Wake(2)]),
        "waiter 1 was cancelled"
    );
}

// ----- shared leases -----

/// A shared pool of `max_size` objects with `k` leases each.
fn shared(max_size: usize, k: usize) -> State {
    State::shared(Limits::new(max_size), k).unwrap()
}

fn wakes(actions: &[Action<u32, u32>]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Wake(_)))
        .count()
}

/// Two leases on object 10, made for the first of them.
fn two_leases(s: &mut State, now: Instant) -> (Checkout<u32>, Checkout<u32>) {
    let w = queued(s.acquire(now, |_| true, || 0));
    let t = tickets(drain(s)).pop().unwrap();
    s.handle_created(t, 10, now).unwrap();
    drain(s);
    let a = served(s, w).unwrap();
    let b = ready(s.acquire(now, |_| true, || 0));
    (a, b)
}

#[test]
fn zero_leases_is_a_config_error() {
    assert_eq!(
        State::shared(Limits::new(1), 0).unwrap_err(),
        ConfigError::ZeroMaxLeases
    );
    assert_eq!(shared(1, 4).max_leases(), 4);
    assert_eq!(State::new(Limits::new(1)).unwrap().max_leases(), 1);
}

#[test]
fn one_creation_serves_k_waiters_and_n_waiters_start_ceil_n_over_k() {
    let now = t0();
    let mut s = shared(10, 3);
    let mut waiters = Vec::new();
    let mut tickets_seen = Vec::new();
    for n in 1..=7 {
        waiters.push(queued(s.acquire(now, |_| true, || n)));
        tickets_seen.extend(tickets(drain(&mut s)));
        assert_eq!(tickets_seen.len(), n.div_ceil(3) as usize, "{n} waiters");
    }
    let mut tickets_seen = tickets_seen.into_iter();
    s.handle_created(tickets_seen.next().unwrap(), 10, now)
        .unwrap();
    assert_eq!(wakes(&drain(&mut s)), 3, "the first object serves three");
    let status = s.status();
    assert_eq!((status.in_use, status.leases, status.waiting), (1, 3, 4));
    let first: Vec<_> = waiters
        .drain(..3)
        .map(|w| served(&mut s, w).unwrap())
        .collect();
    assert!(first.iter().all(|c| *c.object() == 10 && c.is_shared()));
    // Each lease is a checkout of the same object, counted in its meta.
    let counts: Vec<_> = first.iter().map(|c| c.meta().checkouts).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(s.counters().reused, 2);
}

#[test]
fn a_borrower_goes_to_the_least_loaded_object() {
    let now = t0();
    let mut s = shared(2, 3);
    let waiters: Vec<_> = (0..4)
        .map(|n| queued(s.acquire(now, |_| true, || n)))
        .collect();
    let mut t = tickets(drain(&mut s)).into_iter();
    s.handle_created(t.next().unwrap(), 10, now).unwrap();
    s.handle_created(t.next().unwrap(), 20, now).unwrap();
    drain(&mut s);
    let mut held: Vec<_> = waiters
        .into_iter()
        .map(|w| served(&mut s, w).unwrap())
        .collect();
    let objects: Vec<_> = held.iter().map(|c| *c.object()).collect();
    assert_eq!(objects, [10, 10, 10, 20]);
    // 10 has three leases (full), 20 one: 20 takes the next two.
    assert_eq!(*ready(s.acquire(now, |_| true, || 9)).object(), 20);
    s.release(held.remove(0), now, true).unwrap(); // 10: two leases, 20: two
    drain(&mut s);
    held.push(ready(s.acquire(now, |_| true, || 9)));
    held.push(ready(s.acquire(now, |_| true, || 9)));
    let mut last_two: Vec<_> = held[held.len() - 2..].iter().map(|c| *c.object()).collect();
    last_two.sort();
    assert_eq!(last_two, [10, 20], "one each, the least loaded first");
    // Both full now (3 + 3 leases, max_size 2): the next one queues, and no
    // creation starts.
    let w = queued(s.acquire(now, |_| true, || 9));
    assert!(tickets(drain(&mut s)).is_empty());
    assert_eq!(s.status().leases, 6);
    // A lease given back goes to the waiter at once, on the same object.
    let back = held.pop().unwrap();
    let object = *back.object();
    s.release(back, now, true).unwrap();
    assert_eq!(wakes(&drain(&mut s)), 1);
    assert_eq!(*served(&mut s, w).unwrap().object(), object);
}

#[test]
fn the_last_lease_back_makes_the_object_idle() {
    let now = t0();
    let mut s = shared(1, 2);
    let (a, b) = two_leases(&mut s, now);
    s.release(a, now + Duration::from_secs(1), true).unwrap();
    assert_eq!(s.status().idle, 0, "one lease is still out");
    s.release(b, now + Duration::from_secs(2), true).unwrap();
    drain(&mut s);
    let status = s.status();
    assert_eq!((status.idle, status.in_use, status.leases), (1, 0, 0));
    // Its `last_used` is when the last lease came back.
    let again = ready(s.acquire(now, |_| true, || 0));
    assert_eq!(again.meta().last_used, now + Duration::from_secs(2));
}

#[test]
fn a_dead_lent_object_takes_no_new_lease_and_closes_with_its_last() {
    let now = t0();
    let mut s = shared(2, 4);
    let (a, b) = two_leases(&mut s, now);
    // The check at acquire finds it dead: retired, and the caller waits for a new one.
    let w = queued(s.acquire(now, |_| false, || 1));
    let t = tickets(drain(&mut s))
        .pop()
        .expect("a creation for the caller");
    assert_eq!(s.status().size, 2, "the dead one keeps its slot while lent");
    s.handle_created(t, 20, now).unwrap();
    drain(&mut s);
    assert_eq!(*served(&mut s, w).unwrap().object(), 20);
    // Later borrowers all go to 20.
    assert_eq!(*ready(s.acquire(now, |_| true, || 0)).object(), 20);
    s.release(a, now, true).unwrap();
    assert!(drain(&mut s).is_empty(), "a lease is still out");
    s.release(b, now, true).unwrap();
    let closed: Vec<_> = drain(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Close { object, reason, .. } => Some((object, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [(10, CloseReason::Dead)]);
    assert_eq!(s.status().size, 1);
}

#[test]
fn a_lease_given_back_dead_retires_its_object() {
    let now = t0();
    let mut s = shared(1, 2);
    let (a, b) = two_leases(&mut s, now);
    s.release(a, now, false).unwrap();
    // Retired: the newcomer queues (the pool is at its size) rather than share it.
    let w = queued(s.acquire(now, |_| true, || 1));
    assert!(tickets(drain(&mut s)).is_empty());
    s.release(b, now, true).unwrap();
    let actions = drain(&mut s);
    assert!(matches!(
        actions.first(),
        Some(Action::Close {
            reason: CloseReason::Dead,
            ..
        })
    ));
    // Its slot is free: the waiter's creation starts.
    let t = tickets(actions).pop().expect("a creation for the waiter");
    s.handle_created(t, 20, now).unwrap();
    drain(&mut s);
    assert_eq!(*served(&mut s, w).unwrap().object(), 20);
}

#[test]
fn an_outlived_lent_object_takes_no_new_lease() {
    let now = t0();
    let limits = Limits {
        max_lifetime: Some(Duration::from_secs(10)),
        ..Limits::new(2)
    };
    let mut s = State::shared(limits, 4).unwrap();
    let w = queued(s.acquire(now, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 10, now).unwrap();
    drain(&mut s);
    let a = served(&mut s, w).unwrap();
    let later = now + Duration::from_secs(11);
    queued(s.acquire(later, |_| true, || 1));
    assert_eq!(tickets(drain(&mut s)).len(), 1);
    s.release(a, later, true).unwrap();
    let closed = drain(&mut s).into_iter().any(|a| {
        matches!(
            a,
            Action::Close {
                object: 10,
                reason: CloseReason::MaxLifetime,
                ..
            }
        )
    });
    assert!(closed);
}

#[test]
fn close_retires_lent_objects_until_their_last_lease() {
    let now = t0();
    let mut s = shared(1, 2);
    let (a, b) = two_leases(&mut s, now);
    s.close();
    drain(&mut s);
    assert!(matches!(s.acquire(now, |_| true, || 0), Acquire::Closed));
    s.release(a, now, true).unwrap();
    assert!(drain(&mut s).is_empty());
    s.release(b, now, true).unwrap();
    let actions = drain(&mut s);
    assert!(matches!(
        actions.as_slice(),
        [Action::Close {
            object: 10,
            reason: CloseReason::PoolClosed,
            ..
        }]
    ));
    assert_eq!(s.status().size, 0);
}

#[test]
fn a_served_shared_waiter_that_leaves_passes_its_lease_on() {
    let now = t0();
    let mut s = shared(1, 1);
    let a = {
        let w = queued(s.acquire(now, |_| true, || 0));
        let t = tickets(drain(&mut s)).pop().unwrap();
        s.handle_created(t, 10, now).unwrap();
        drain(&mut s);
        served(&mut s, w).unwrap()
    };
    let w1 = queued(s.acquire(now, |_| true, || 1));
    let w2 = queued(s.acquire(now, |_| true, || 2));
    s.release(a, now, true).unwrap();
    drain(&mut s);
    s.cancel_waiter(w1, now).unwrap(); // served meanwhile: its lease goes on
    assert_eq!(wakes(&drain(&mut s)), 1);
    assert_eq!(*served(&mut s, w2).unwrap().object(), 10);
    assert_eq!(s.status().leases, 1);
}

#[test]
fn a_detached_lease_retires_its_object_unclosed() {
    let now = t0();
    let mut s = shared(1, 2);
    let (a, b) = two_leases(&mut s, now);
    assert_eq!(s.detach(a).unwrap(), 10);
    s.release(b, now, true).unwrap();
    let actions = drain(&mut s);
    assert!(actions.iter().all(|a| !matches!(a, Action::Close { .. })));
    assert_eq!(s.counters().detached, 1);
    assert_eq!(s.status().size, 0);
}

#[test]
fn a_failed_shared_creation_fails_one_waiter_and_tries_again() {
    let now = t0();
    let mut s = shared(4, 2);
    let waiters: Vec<_> = (0..4)
        .map(|n| queued(s.acquire(now, |_| true, || n)))
        .collect();
    let mut t = tickets(drain(&mut s)).into_iter();
    assert_eq!(t.len(), 2);
    // Four waiters, one creation left for two: the oldest fails, and a
    // creation starts for the three left.
    assert_eq!(
        s.handle_create_failed(t.next().unwrap(), "refused", now)
            .unwrap(),
        None
    );
    let actions = drain(&mut s);
    assert_eq!((wakes(&actions), tickets(actions).len()), (1, 1));
    let mut waiters = waiters.into_iter();
    assert_eq!(
        served(&mut s, waiters.next().unwrap()).unwrap_err(),
        Failure::Create("refused")
    );
    assert_eq!(s.status().creating, 2);
}

// ----- refusals -----

#[test]
fn a_refusal_fails_every_uncovered_waiter_at_once_and_backs_off() {
    let now = t0();
    let mut s = State::new(Limits::new(2)).unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|n| queued(s.acquire(now, |_| true, || n)))
        .collect();
    let mut t = tickets(drain(&mut s)).into_iter();
    assert_eq!(t.len(), 2);
    // One of two creations refused: one waiter is still covered by the
    // other; the other four fail at once, the oldest with the error.
    let undelivered = s
        .handle_create_refused(t.next().unwrap(), "429", now)
        .unwrap();
    assert_eq!(undelivered, None);
    let actions = drain(&mut s);
    assert_eq!(wakes(&actions), 4);
    assert!(tickets(actions).is_empty(), "no creation in the back-off");
    let until = now + DEFAULT_REFUSAL_BACKOFF;
    let mut waiters = waiters.into_iter();
    assert_eq!(
        served(&mut s, waiters.next().unwrap()).unwrap_err(),
        Failure::Create("429")
    );
    for _ in 0..3 {
        assert_eq!(
            served(&mut s, waiters.next().unwrap()).unwrap_err(),
            Failure::Refused { until }
        );
    }
    assert_eq!((s.status().waiting, s.counters().refused), (1, 1));
    assert_eq!(s.poll_timeout(), Some(until));
    // The last waiter's creation succeeds: the back-off ends.
    s.handle_created(t.next().unwrap(), 7, now).unwrap();
    drain(&mut s);
    assert_eq!(
        *served(&mut s, waiters.next().unwrap()).unwrap().object(),
        7
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn an_acquire_in_the_back_off_is_refused_without_a_creation() {
    let now = t0();
    let mut s = State::new(Limits::new(2)).unwrap();
    let w = queued(s.acquire(now, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_create_refused(t, "503", now).unwrap();
    drain(&mut s);
    assert_eq!(served(&mut s, w).unwrap_err(), Failure::Create("503"));
    let until = now + DEFAULT_REFUSAL_BACKOFF;
    let soon = now + DEFAULT_REFUSAL_BACKOFF / 2;
    assert!(matches!(s.acquire(soon, |_| true, || 1), Acquire::Refused { until: u } if u == until));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.status().waiting, 0);
    // Once it is over, the next caller queues and a creation starts.
    queued(s.acquire(until, |_| true, || 2));
    assert_eq!(tickets(drain(&mut s)).len(), 1);
}

#[test]
fn refusals_in_a_row_double_the_back_off_and_a_success_resets_it() {
    let now = t0();
    let limits = Limits {
        refusal_backoff: Duration::from_secs(1),
        ..Limits::new(1)
    };
    let mut s = State::new(limits).unwrap();
    let mut at = now;
    for pause in [1, 2, 4, 8, 16, 30, 30] {
        queued(s.acquire(at, |_| true, || 0));
        let t = tickets(drain(&mut s))
            .pop()
            .expect("a creation once the back-off is over");
        s.handle_create_refused(t, "429", at).unwrap();
        drain(&mut s);
        let until = s.poll_timeout().expect("a back-off");
        assert_eq!(until - at, Duration::from_secs(pause));
        s.handle_timeout(until);
        at = until;
    }
    let w = queued(s.acquire(at, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_created(t, 1, at).unwrap();
    drain(&mut s);
    let c = served(&mut s, w).unwrap();
    s.detach(c).unwrap(); // the slot is free again
    queued(s.acquire(at, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_create_refused(t, "429", at).unwrap();
    drain(&mut s);
    assert_eq!(
        s.poll_timeout(),
        Some(at + Duration::from_secs(1)),
        "reset by the success"
    );
}

#[test]
fn the_refill_waits_for_the_back_off() {
    let now = t0();
    let limits = Limits {
        min_idle: 1,
        ..Limits::new(2)
    };
    let mut s = State::new(limits).unwrap();
    let t = tickets(drain(&mut s)).pop().expect("the refill");
    // Nobody waits: the refusal is not delivered, and the refill pauses.
    assert_eq!(s.handle_create_refused(t, "429", now).unwrap(), Some("429"));
    assert!(tickets(drain(&mut s)).is_empty());
    s.handle_timeout(now + DEFAULT_REFUSAL_BACKOFF);
    assert_eq!(tickets(drain(&mut s)).len(), 1, "the refill resumes");
}

#[test]
fn a_plain_failure_in_the_back_off_fails_every_uncovered_waiter() {
    let now = t0();
    let mut s = shared(3, 2);
    let waiters: Vec<_> = (0..6)
        .map(|n| queued(s.acquire(now, |_| true, || n)))
        .collect();
    let mut t = tickets(drain(&mut s)).into_iter();
    assert_eq!(t.len(), 3);
    // Refused: 6 waiters, 2 creations left for 2 each: the two oldest fail.
    s.handle_create_refused(t.next().unwrap(), "429", now)
        .unwrap();
    assert_eq!(wakes(&drain(&mut s)), 2);
    // A timeout then: no creation will start in the back-off, so both
    // waiters it covered fail too, rather than wait for nothing.
    s.handle_create_failed(t.next().unwrap(), "timeout", now)
        .unwrap();
    assert_eq!(wakes(&drain(&mut s)), 2);
    let outcomes: Vec<_> = waiters
        .into_iter()
        .take(4)
        .map(|w| served(&mut s, w).unwrap_err())
        .collect();
    let until = now + DEFAULT_REFUSAL_BACKOFF;
    assert_eq!(
        outcomes,
        [
            Failure::Create("429"),
            Failure::Refused { until },
            Failure::Create("timeout"),
            Failure::Refused { until }
        ]
    );
    assert_eq!(s.status().waiting, 2);
}

#[test]
fn a_huge_refusal_backoff_neither_panics_nor_ends_at_once() {
    let now = t0();
    let limits = Limits {
        refusal_backoff: Duration::MAX,
        ..Limits::new(1)
    };
    let mut s = State::new(limits).unwrap();
    queued(s.acquire(now, |_| true, || 0));
    let t = tickets(drain(&mut s)).pop().unwrap();
    s.handle_create_refused(t, "429", now).unwrap();
    drain(&mut s);
    assert!(matches!(s.acquire(now, |_| true, || 1), Acquire::Refused { until } if until > now));
}
