//! The sans-IO state machine driven from plain threads: a `std::sync::Mutex`
//! around it, a `Condvar` for the waiters, and creations run inline by the
//! thread that the machine asked. No async runtime anywhere.
//!
//! This is the whole of what a driver does, and the pattern to follow to
//! embed the pool in an executor of your own:
//! 1. feed one input to the machine under the lock,
//! 2. drain its actions, let go of the lock, carry them out,
//! 3. report the outcome of each creation back as another input.
//!
//! Run it with `cargo run --example threads`.

use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Instant;

use wtpool::machine::{Acquire, Action, Checkout, Limits, PoolState, WaitPoll};

/// A pretend connection.
type Conn = String;
/// The machine: `Conn` objects, `String` creation errors, `()` as the wake
/// payload (one condvar wakes every waiter, and each checks its own slot).
type State = PoolState<Conn, String, ()>;

struct ThreadPool {
    state: Mutex<State>,
    served: Condvar,
}

impl ThreadPool {
    fn new(max_size: usize) -> Self {
        ThreadPool {
            state: Mutex::new(State::new(Limits::new(max_size)).expect("valid limits")),
            served: Condvar::new(),
        }
    }

    /// Drains what the machine asked for and does it, outside the lock.
    fn perform(&self, mut state: std::sync::MutexGuard<'_, State>) {
        let actions: Vec<_> = std::iter::from_fn(|| state.poll_action()).collect();
        drop(state);
        for action in actions {
            match action {
                Action::Wake(()) => self.served.notify_all(),
                Action::Create(ticket) => {
                    // Creating may take long: no lock is held here.
                    let conn = format!("conn-{}", rand_id());
                    let mut state = self.state.lock().unwrap();
                    state
                        .handle_created(ticket, conn, Instant::now())
                        .expect("our ticket");
                    self.perform(state);
                }
                Action::Close { object, reason, .. } => println!("closing {object} ({reason:?})"),
            }
        }
    }

    fn acquire(&self) -> Result<Checkout<Conn>, String> {
        let mut state = self.state.lock().unwrap();
        let mut waiter = match state.acquire(Instant::now(), |_| true, || ()) {
            Acquire::Ready(checkout) => return Ok(checkout),
            Acquire::Closed => return Err("closed".into()),
            Acquire::Refused { until } => return Err(format!("refused until {until:?}")),
            Acquire::Queued(waiter) => waiter,
        };
        self.perform(state);
        let mut state = self.state.lock().unwrap();
        loop {
            match state.poll_waiter(waiter, |()| ()).expect("our waiter") {
                WaitPoll::Ready(served) => return served.map_err(|failure| format!("{failure:?}")),
                WaitPoll::Pending(still) => waiter = still,
            }
            state = self.served.wait(state).unwrap();
        }
    }

    fn release(&self, checkout: Checkout<Conn>) {
        let mut state = self.state.lock().unwrap();
        state
            .release(checkout, Instant::now(), true)
            .expect("our checkout");
        self.perform(state);
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(thread::current().id()) % 10_000
}

fn main() {
    let pool = ThreadPool::new(3);
    thread::scope(|scope| {
        for worker in 0..8 {
            let pool = &pool;
            scope.spawn(move || {
                for _ in 0..100 {
                    let conn = pool.acquire().expect("the pool is open");
                    assert!(conn.object().starts_with("conn-"));
                    thread::yield_now();
                    pool.release(conn);
                }
                println!("worker {worker} done");
            });
        }
    });
    let mut state = pool.state.lock().unwrap();
    let status = state.status();
    println!("{status:?}");
    assert_eq!(status.in_use, 0);
    assert!(status.size <= 3 && status.idle == status.size);
    state.check_invariants().expect("invariants hold");
    state.close();
    pool.perform(state);
    let counters = pool.state.lock().unwrap().counters();
    println!("{counters:?}");
    assert_eq!(counters.checkouts, 800);
}
