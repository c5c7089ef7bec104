//! The workloads that `benches/engine.rs` (criterion) and `benches/table.rs`
//! (the side-by-side table) share, so that both measure exactly the same code.
//!
//! Every engine workload returns the wall time of `iters` operations, in the
//! shape criterion's `iter_custom` wants. One operation is a get and a drop of
//! a trivial object (a `u64`), the workload of the project's first
//! measurements of the peers (see docs/benchmarks.md).
#![allow(dead_code)]

pub mod wt;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wtpool::machine::{Acquire, Action, Checkout, Limits, PoolState, WaitPoll, WaiterId};

/// The object every pool hands out.
pub const OBJECT: u64 = 42;

// ----- the runtimes -----

/// The two runtimes the engine rows run on: a multi-thread tokio runtime with
/// 2 workers, and a smol executor run by 2 threads.
pub struct Runtimes {
    pub tokio: tokio::runtime::Runtime,
    pub smol: SmolRuntime,
}

impl Runtimes {
    pub fn new() -> Self {
        Runtimes {
            tokio: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
            smol: SmolRuntime::new(2),
        }
    }

    pub fn exec(&self, kind: Kind) -> Exec {
        match kind {
            Kind::Tokio => Exec::Tokio(self.tokio.handle().clone()),
            Kind::Smol => Exec::Smol(self.smol.executor.clone()),
        }
    }

    /// Runs `future` as a task of the runtime `kind` and waits for it.
    pub fn run<T: Send + 'static>(
        &self,
        kind: Kind,
        future: impl Future<Output = T> + Send + 'static,
    ) -> T {
        match kind {
            Kind::Tokio => self
                .tokio
                .block_on(self.tokio.spawn(future))
                .expect("the task ran"),
            Kind::Smol => smol::future::block_on(self.smol.executor.spawn(future)),
        }
    }
}

impl Default for Runtimes {
    fn default() -> Self {
        Self::new()
    }
}

/// A smol executor run by `threads` threads of its own.
pub struct SmolRuntime {
    pub executor: Arc<smol::Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl SmolRuntime {
    pub fn new(threads: usize) -> Self {
        let executor = Arc::new(smol::Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..threads)
            .map(|i| {
                let (executor, stopped) = (executor.clone(), stopped.clone());
                std::thread::Builder::new()
                    .name(format!("bench-smol-{i}"))
                    .spawn(move || {
                        let _ = smol::future::block_on(executor.run(stopped.recv()));
                    })
                    .expect("a thread")
            })
            .collect();
        SmolRuntime {
            executor,
            stop: Some(stop),
            threads,
        }
    }
}

impl Drop for SmolRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tokio,
    Smol,
}

impl Kind {
    /// Lets other tasks run: the "hold the object across a yield" of the
    /// contended workloads.
    pub async fn yield_now(self) {
        match self {
            Kind::Tokio => tokio::task::yield_now().await,
            Kind::Smol => smol::future::yield_now().await,
        }
    }
}

/// A handle to spawn tasks on one of the runtimes.
#[derive(Clone)]
pub enum Exec {
    Tokio(tokio::runtime::Handle),
    Smol(Arc<smol::Executor<'static>>),
}

type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Exec {
    pub fn kind(&self) -> Kind {
        match self {
            Exec::Tokio(_) => Kind::Tokio,
            Exec::Smol(_) => Kind::Smol,
        }
    }

    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        match self {
            Exec::Tokio(handle) => {
                let task = handle.spawn(future);
                Box::pin(async move { task.await.expect("the task ran") })
            }
            Exec::Smol(executor) => Box::pin(executor.spawn(future)),
        }
    }
}

// ----- the pools under test -----

/// wtpool's factory of trivial objects.
pub struct Trivial;

impl wtpool::Factory for Trivial {
    type Object = u64;
    type Error = std::io::Error;

    async fn create(&self) -> Result<u64, std::io::Error> {
        Ok(OBJECT)
    }
}

/// deadpool's manager of trivial objects (`recycle` says yes at once).
pub struct DeadpoolManager;

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(OBJECT)
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// bb8's manager of trivial objects (`is_valid` says yes at once).
pub struct Bb8Manager;

impl bb8::ManageConnection for Bb8Manager {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(OBJECT)
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

pub type DeadpoolPool = deadpool::managed::Pool<DeadpoolManager>;

/// A pool the engine workloads can drive: get, `hold`, drop.
pub trait Subject: Clone + Send + Sync + 'static {
    /// Gets an object, awaits `hold` with it, and drops it.
    fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) -> impl Future<Output = ()> + Send;

    /// Fills the pool: `n` objects made and idle.
    fn fill(&self, n: usize) -> impl Future<Output = ()> + Send;

    /// Tasks queued for an object.
    fn waiting(&self) -> usize;
}

impl<R: wtpool::Runtime> Subject for wtpool::Pool<Trivial, R> {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        let object = self.acquire().await.expect("an object");
        black_box(*object);
        hold.await;
        drop(object);
    }

    async fn fill(&self, n: usize) {
        let held = futures::future::join_all((0..n).map(|_| self.acquire())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    fn waiting(&self) -> usize {
        self.status().waiting
    }
}

impl<R: wtpool::Runtime> Subject for wtpool::SharedPool<Trivial, R> {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        let lease = self.acquire().await.expect("a lease");
        black_box(*lease);
        hold.await;
        drop(lease);
    }

    async fn fill(&self, n: usize) {
        let held = futures::future::join_all((0..n).map(|_| self.acquire())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    fn waiting(&self) -> usize {
        self.status().waiting
    }
}

/// One task, lease and drop in a loop on a shared pool (8 objects of 16
/// leases), after a tenth as many to warm up: the shared counterpart of
/// [`uncontended`].
pub async fn shared_uncontended<R: wtpool::Runtime + Default>(iters: u64) -> Duration {
    let pool = wtpool::Pool::<Trivial, R>::builder(Trivial)
        .max_size(8)
        .build_shared(16)
        .expect("a pool");
    uncontended(pool.clone(), iters / 10).await;
    uncontended(pool, iters).await
}

/// The least a fair async pool does, as a floor for the pools' rows (it is
/// not a pool): tokio's semaphore queues the tasks in FIFO order, its
/// releaser assigning the permit into the waiter (issue 10's anchor), and a
/// `Mutex<Vec>` holds the objects. No guard (a cancelled task would lose
/// its object), no health check, no accounting, no timeout. The semaphore
/// is runtime-agnostic: it runs on smol too.
#[derive(Clone)]
pub struct BarePool(std::sync::Arc<(tokio::sync::Semaphore, Mutex<Vec<u64>>)>);

impl BarePool {
    pub fn new(size: usize) -> Self {
        let objects = Mutex::new(vec![OBJECT; size]);
        let permits = tokio::sync::Semaphore::new(size);
        BarePool(std::sync::Arc::new((permits, objects)))
    }
}

impl Subject for BarePool {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        let (permits, objects) = &*self.0;
        let permit = permits.acquire().await.expect("never closed");
        let object = objects.lock().unwrap().pop().expect("an object per permit");
        black_box(object);
        hold.await;
        objects.lock().unwrap().push(object);
        drop(permit);
    }

    async fn fill(&self, _: usize) {}

    /// Not counted (see [`CountedBarePool`]).
    fn waiting(&self) -> usize {
        0
    }
}

/// A [`BarePool`] that counts the tasks waiting in it, for the hand-off
/// workload (which starts once they are all queued); the engine rows use
/// the bare pool itself, without the count's two atomic operations.
#[derive(Clone)]
struct CountedBarePool {
    bare: BarePool,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Subject for CountedBarePool {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        use std::sync::atomic::Ordering::Relaxed;
        self.waiting.fetch_add(1, Relaxed);
        // Holding means no longer waiting.
        let holding = async {
            self.waiting.fetch_sub(1, Relaxed);
            hold.await
        };
        self.bare.cycle(holding).await
    }

    async fn fill(&self, _: usize) {}

    fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Subject for DeadpoolPool {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        let object = self.get().await.expect("an object");
        black_box(*object);
        hold.await;
        drop(object);
    }

    async fn fill(&self, n: usize) {
        let held = futures::future::join_all((0..n).map(|_| self.get())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    fn waiting(&self) -> usize {
        self.status().waiting
    }
}

impl Subject for bb8::Pool<Bb8Manager> {
    async fn cycle<H: Future<Output = ()> + Send>(&self, hold: H) {
        let object = self.get().await.expect("an object");
        black_box(*object);
        hold.await;
        drop(object);
    }

    async fn fill(&self, n: usize) {
        let held = futures::future::join_all((0..n).map(|_| self.get())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    /// bb8 does not count its waiters.
    fn waiting(&self) -> usize {
        0
    }
}

/// The pools of the engine rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Wtpool,
    Deadpool,
    Bb8,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Wtpool => "wtpool",
            Peer::Deadpool => "deadpool",
            Peer::Bb8 => "bb8",
        }
    }
}

/// A full pool of `size` trivial objects on the runtime `kind` (bb8 is tokio only).
/// Must run inside that runtime.
pub async fn make_wtpool_tokio(size: usize) -> wtpool_tokio::Pool<Trivial> {
    let pool = wtpool_tokio::Pool::new(Trivial, size).expect("a pool");
    pool.fill(size).await;
    pool
}

pub async fn make_wtpool_smol(size: usize) -> wtpool_smol::Pool<Trivial> {
    let pool = wtpool_smol::Pool::new(Trivial, size).expect("a pool");
    pool.fill(size).await;
    pool
}

pub async fn make_deadpool(size: usize) -> DeadpoolPool {
    let pool = DeadpoolPool::builder(DeadpoolManager)
        .max_size(size)
        .build()
        .expect("a pool");
    pool.fill(size).await;
    pool
}

pub async fn make_bb8(size: usize) -> bb8::Pool<Bb8Manager> {
    let pool = bb8::Pool::builder()
        .max_size(u32::try_from(size).expect("a small pool"))
        .build(Bb8Manager)
        .await
        .expect("a pool");
    pool.fill(size).await;
    pool
}

// ----- the engine workloads -----

/// The floor: a `std::sync::Mutex<Vec<u64>>`, one pop and one push (two
/// lock-unlock pairs) per operation, on the calling thread.
pub fn floor(iters: u64) -> Duration {
    let pool = Mutex::new(vec![OBJECT; 8]);
    let start = Instant::now();
    for _ in 0..iters {
        let object = pool.lock().unwrap().pop().expect("an object");
        black_box(object);
        pool.lock().unwrap().push(object);
    }
    start.elapsed()
}

/// The floor of the two-thread rows: the `Mutex<Vec<u64>>` of [`floor`],
/// shared by two OS threads, `iters` operations in all.
pub fn floor_two_threads(iters: u64) -> Duration {
    let pool = Mutex::new(vec![OBJECT; 8]);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..iters / 2 {
                    let object = pool.lock().unwrap().pop().expect("an object");
                    black_box(object);
                    pool.lock().unwrap().push(object);
                }
            });
        }
    });
    start.elapsed()
}

/// Two OS threads sharing the pool, each looping get + drop under a plain
/// `block_on` (no executor of the pool's), `iters` operations in all. Each
/// thread is inside the tokio runtime, which bb8's timers need.
pub fn two_threads<S: Subject>(tokio: &tokio::runtime::Handle, pool: S, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let pool = pool.clone();
            scope.spawn(move || {
                let _inside = tokio.enter();
                for _ in 0..iters / 2 {
                    smol::future::block_on(pool.cycle(std::future::ready(())));
                }
            });
        }
    });
    start.elapsed()
}

/// One task, get and drop in a loop, nobody else using the pool.
pub async fn uncontended<S: Subject>(pool: S, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        pool.cycle(std::future::ready(())).await;
    }
    start.elapsed()
}

/// `tasks` tasks sharing the pool, each getting an object, yielding while it
/// holds it, and dropping it; the time of `iters` operations in all.
pub async fn contended<S: Subject>(exec: Exec, pool: S, tasks: usize, iters: u64) -> Duration {
    let per_task = iters.div_ceil(tasks as u64).max(1);
    let kind = exec.kind();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            exec.spawn(async move {
                for _ in 0..per_task {
                    pool.cycle(kind.yield_now()).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
    let elapsed = start.elapsed();
    elapsed.mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
}

/// `tasks` tasks that only yield, `iters` yields in all: what the executor
/// alone costs in the contended workloads (no pool, nothing held).
pub async fn yield_only(exec: Exec, tasks: usize, iters: u64) -> Duration {
    let per_task = iters.div_ceil(tasks as u64).max(1);
    let kind = exec.kind();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            exec.spawn(async move {
                for _ in 0..per_task {
                    kind.yield_now().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
    let elapsed = start.elapsed();
    elapsed.mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
}

/// A pool of `size` ready on `kind`, made inside that runtime.
pub enum AnyPool {
    WtTokio(wtpool_tokio::Pool<Trivial>),
    WtSmol(wtpool_smol::Pool<Trivial>),
    Deadpool(DeadpoolPool),
    Bb8(bb8::Pool<Bb8Manager>),
}

impl AnyPool {
    pub fn make(rts: &Runtimes, peer: Peer, kind: Kind, size: usize) -> AnyPool {
        match (peer, kind) {
            (Peer::Wtpool, Kind::Tokio) => AnyPool::WtTokio(rts.run(kind, make_wtpool_tokio(size))),
            (Peer::Wtpool, Kind::Smol) => AnyPool::WtSmol(rts.run(kind, make_wtpool_smol(size))),
            (Peer::Deadpool, _) => AnyPool::Deadpool(rts.run(kind, make_deadpool(size))),
            (Peer::Bb8, Kind::Tokio) => AnyPool::Bb8(rts.run(kind, make_bb8(size))),
            (Peer::Bb8, Kind::Smol) => panic!("bb8 runs on tokio only"),
        }
    }

    pub fn uncontended(&self, rts: &Runtimes, kind: Kind, iters: u64) -> Duration {
        match self {
            AnyPool::WtTokio(p) => rts.run(kind, uncontended(p.clone(), iters)),
            AnyPool::WtSmol(p) => rts.run(kind, uncontended(p.clone(), iters)),
            AnyPool::Deadpool(p) => rts.run(kind, uncontended(p.clone(), iters)),
            AnyPool::Bb8(p) => rts.run(kind, uncontended(p.clone(), iters)),
        }
    }

    pub fn two_threads(&self, rts: &Runtimes, iters: u64) -> Duration {
        let tokio = rts.tokio.handle();
        match self {
            AnyPool::WtTokio(p) => two_threads(tokio, p.clone(), iters),
            AnyPool::WtSmol(p) => two_threads(tokio, p.clone(), iters),
            AnyPool::Deadpool(p) => two_threads(tokio, p.clone(), iters),
            AnyPool::Bb8(p) => two_threads(tokio, p.clone(), iters),
        }
    }

    pub fn contended(&self, rts: &Runtimes, kind: Kind, tasks: usize, iters: u64) -> Duration {
        let exec = rts.exec(kind);
        match self {
            AnyPool::WtTokio(p) => rts.run(kind, contended(exec, p.clone(), tasks, iters)),
            AnyPool::WtSmol(p) => rts.run(kind, contended(exec, p.clone(), tasks, iters)),
            AnyPool::Deadpool(p) => rts.run(kind, contended(exec, p.clone(), tasks, iters)),
            AnyPool::Bb8(p) => rts.run(kind, contended(exec, p.clone(), tasks, iters)),
        }
    }
}

// ----- the state machine alone (sans-IO) -----

/// The machine as the benchmarks drive it: no waker, no error type.
pub type Machine = PoolState<u64, (), ()>;

pub fn queued(answer: Acquire<u64>) -> WaiterId {
    match answer {
        Acquire::Queued(waiter) => waiter,
        _ => panic!("expected to be queued"),
    }
}

pub fn ready(answer: Acquire<u64>) -> Checkout<u64> {
    match answer {
        Acquire::Ready(checkout) => checkout,
        _ => panic!("expected an idle object"),
    }
}

pub fn drain<E, W>(machine: &mut PoolState<u64, E, W>) {
    while let Some(action) = machine.poll_action() {
        black_box(&action);
    }
}

/// A machine of `max_size` whose `idle` objects are made and idle (made for
/// waiters, so its waiter slab has `idle` free slots).
pub fn machine_with_idle<E, W: Default>(
    max_size: usize,
    idle: usize,
    now: Instant,
) -> PoolState<u64, E, W> {
    let mut machine = PoolState::new(Limits::new(max_size)).expect("valid limits");
    let waiters: Vec<_> = (0..idle)
        .map(|_| queued(machine.acquire(now, |_| true, W::default)))
        .collect();
    let tickets: Vec<_> = std::iter::from_fn(|| machine.poll_action())
        .filter_map(|action| match action {
            Action::Create(ticket) => Some(ticket),
            _ => None,
        })
        .collect();
    for ticket in tickets {
        machine
            .handle_created(ticket, OBJECT, now)
            .expect("our ticket");
    }
    drain(&mut machine);
    for waiter in waiters {
        match machine.poll_waiter(waiter, |_| ()).expect("our waiter") {
            WaitPoll::Ready(Ok(checkout)) => machine.release(checkout, now, true).expect("ours"),
            _ => panic!("expected to be served"),
        }
    }
    drain(&mut machine);
    machine
}

/// Get and drop on the bare machine, `size` objects idle, the time given
/// (no clock read, no lock).
pub fn machine_uncontended(size: usize, iters: u64) -> Duration {
    let now = Instant::now();
    let mut machine: Machine = machine_with_idle(size, size, now);
    let start = Instant::now();
    for _ in 0..iters {
        let checkout = ready(machine.acquire(now, |_| true, || ()));
        black_box(checkout.object());
        machine.release(checkout, now, true).expect("ours");
        drain(&mut machine);
    }
    start.elapsed()
}

/// What the async driver does per get and drop, without the async part: the
/// machine behind a `std::sync::Mutex`, a clock read and an action drain for
/// each of the two inputs.
pub fn machine_locked_clocked(iters: u64) -> Duration {
    let machine = Mutex::new(machine_with_idle::<(), ()>(1, 1, Instant::now()));
    let start = Instant::now();
    for _ in 0..iters {
        let checkout = {
            let mut machine = machine.lock().unwrap();
            let checkout = ready(machine.acquire(Instant::now(), |_| true, || ()));
            drain(&mut machine);
            checkout
        };
        black_box(checkout.object());
        let mut machine = machine.lock().unwrap();
        machine
            .release(checkout, Instant::now(), true)
            .expect("ours");
        drain(&mut machine);
    }
    start.elapsed()
}

/// A hand-off through a queue of `waiters` waiters on the bare machine: the
/// one object is given back to the oldest waiter, which collects it, and a
/// newcomer joins the tail, so the queue stays `waiters` long.
pub fn machine_handoff(waiters: usize, iters: u64) -> Duration {
    let now = Instant::now();
    let mut machine: Machine = machine_with_idle(1, 1, now);
    let mut held = ready(machine.acquire(now, |_| true, || ()));
    let mut queue: VecDeque<_> = (0..waiters)
        .map(|_| queued(machine.acquire(now, |_| true, || ())))
        .collect();
    drain(&mut machine);
    let start = Instant::now();
    for _ in 0..iters {
        machine.release(held, now, true).expect("ours");
        drain(&mut machine);
        let oldest = queue.pop_front().expect("a waiter");
        held = match machine.poll_waiter(oldest, |_| ()).expect("ours") {
            WaitPoll::Ready(Ok(checkout)) => checkout,
            _ => panic!("the oldest waiter is served"),
        };
        queue.push_back(queued(machine.acquire(now, |_| true, || ())));
    }
    start.elapsed()
}

/// Where a cancelled waiter stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Middle,
    End,
}

/// Cancelling one of `waiters` queued waiters, and queueing a newcomer so
/// that the queue keeps its length: on the bare machine.
///
/// From the middle: the waiters queued at positions `waiters/2`,
/// `waiters/2 + 1`, … are cancelled one after the other, so that each stands
/// at position `waiters/2` when cancelled; after `waiters/2` of them the queue
/// is built anew (outside the timed part). From the end: the newest waiter.
pub fn machine_cancel(waiters: usize, position: Position, iters: u64) -> Duration {
    let now = Instant::now();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let mut machine: Machine = machine_with_idle(1, 1, now);
        let held = ready(machine.acquire(now, |_| true, || ()));
        let mut queue: Vec<Option<WaiterId>> = (0..waiters)
            .map(|_| Some(queued(machine.acquire(now, |_| true, || ()))))
            .collect();
        let round = (iters - done).min(waiters as u64 / 2);
        let start = Instant::now();
        match position {
            Position::Middle => {
                let mut newcomers = Vec::with_capacity(round as usize);
                for i in 0..round as usize {
                    let waiter = queue[waiters / 2 + i].take().expect("queued");
                    machine.cancel_waiter(waiter, now).expect("ours");
                    newcomers.push(queued(machine.acquire(now, |_| true, || ())));
                }
                elapsed += start.elapsed();
                black_box(newcomers);
            }
            Position::End => {
                for _ in 0..round {
                    let waiter = queue.pop().flatten().expect("queued");
                    machine.cancel_waiter(waiter, now).expect("ours");
                    queue.push(Some(queued(machine.acquire(now, |_| true, || ()))));
                }
                elapsed += start.elapsed();
            }
        }
        black_box(held);
        done += round;
    }
    elapsed
}

// ----- the async pool at scale -----

/// Get and drop on a wtpool/tokio pool of `size` full of idle objects, one task.
pub fn async_uncontended_size(rts: &Runtimes, size: usize, iters: u64) -> Duration {
    rts.run(Kind::Tokio, async move {
        let pool = make_wtpool_tokio(size).await;
        uncontended(pool, iters).await
    })
}

/// A hand-off through a queue of `waiters` tasks on a wtpool/tokio pool of
/// one object: `waiters + 1` tasks get and drop in a loop; each drop hands the
/// object to the oldest waiter and the task queues again at the tail. Timed
/// from the moment every task is queued.
pub fn async_handoff(rts: &Runtimes, waiters: usize, iters: u64) -> Duration {
    let exec = rts.exec(Kind::Tokio);
    rts.run(Kind::Tokio, async move {
        handoff(exec, make_wtpool_tokio(1).await, waiters, iters).await
    })
}

/// The same hand-off on deadpool/tokio, for comparison: how much of the
/// cost of a long queue is the executor's and the cache's, not the pool's.
pub fn deadpool_handoff(rts: &Runtimes, waiters: usize, iters: u64) -> Duration {
    let exec = rts.exec(Kind::Tokio);
    rts.run(Kind::Tokio, async move {
        handoff(exec, make_deadpool(1).await, waiters, iters).await
    })
}

/// The same hand-off on the bare FIFO pool ([`BarePool`]), counting its
/// queued tasks: whether a long queue slows down a pool that does nothing
/// else.
pub fn bare_handoff(rts: &Runtimes, waiters: usize, iters: u64) -> Duration {
    let exec = rts.exec(Kind::Tokio);
    let pool = CountedBarePool {
        bare: BarePool::new(1),
        waiting: Default::default(),
    };
    rts.run(Kind::Tokio, handoff(exec, pool, waiters, iters))
}

async fn handoff<S: Subject>(exec: Exec, pool: S, waiters: usize, iters: u64) -> Duration {
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let (holding, held) = futures::channel::oneshot::channel::<()>();
    let holder = {
        let pool = pool.clone();
        exec.spawn(async move {
            pool.cycle(async move {
                let _ = holding.send(());
                let _ = released.await;
            })
            .await;
        })
    };
    held.await.expect("the holder got the object");
    let tasks = waiters + 1;
    let per_task = (iters / tasks as u64).max(8);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            exec.spawn(async move {
                for _ in 0..per_task {
                    pool.cycle(std::future::ready(())).await;
                }
            })
        })
        .collect();
    while pool.waiting() < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    let _ = release.send(());
    holder.await;
    for handle in handles {
        handle.await;
    }
    let elapsed = start.elapsed();
    elapsed.mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
}

/// Cancelling one of `waiters` pending `acquire()` futures of a wtpool/tokio
/// pool (dropping it) and starting a newcomer (one poll), as
/// [`machine_cancel`] does on the bare machine.
pub fn async_cancel(rts: &Runtimes, waiters: usize, position: Position, iters: u64) -> Duration {
    rts.tokio.block_on(async move {
        let pool = make_wtpool_tokio(1).await;
        let held = pool.acquire().await.expect("the object");
        let mut cx = Context::from_waker(Waker::noop());
        let start_waiting = |cx: &mut Context<'_>| {
            let mut future = Box::pin(pool.acquire());
            assert!(future.as_mut().poll(cx).is_pending());
            future
        };
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let mut queue: Vec<_> = (0..waiters).map(|_| Some(start_waiting(&mut cx))).collect();
            let round = (iters - done).min(waiters as u64 / 2);
            let start = Instant::now();
            match position {
                Position::Middle => {
                    let mut newcomers = Vec::with_capacity(round as usize);
                    for i in 0..round as usize {
                        drop(queue[waiters / 2 + i].take());
                        newcomers.push(start_waiting(&mut cx));
                    }
                    elapsed += start.elapsed();
                    drop(newcomers);
                }
                Position::End => {
                    for _ in 0..round {
                        drop(queue.pop());
                        queue.push(Some(start_waiting(&mut cx)));
                    }
                    elapsed += start.elapsed();
                }
            }
            drop(queue);
            done += round;
        }
        drop(held);
        elapsed
    })
}

// ----- what an operation is made of -----

/// `Instant::now()` alone.
pub fn clock_read(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(Instant::now());
    }
    start.elapsed()
}

/// An uncontended `std::sync::Mutex` lock and unlock.
pub fn mutex_pair(iters: u64) -> Duration {
    let mutex = Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..iters {
        *mutex.lock().unwrap() += 1;
    }
    black_box(mutex);
    start.elapsed()
}

/// An `Arc` clone and drop.
pub fn arc_pair(iters: u64) -> Duration {
    let arc = Arc::new(OBJECT);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(arc.clone());
    }
    start.elapsed()
}

/// Polls a future that is ready at once, outside any runtime.
pub fn poll_ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected the future to be ready"),
    }
}

/// Get and drop on a wtpool pool polled by hand, outside any runtime: the
/// driver's cost without the executor's.
pub fn wtpool_polled_by_hand(rts: &Runtimes, iters: u64) -> Duration {
    let pool = rts.run(Kind::Tokio, make_wtpool_tokio(1));
    let start = Instant::now();
    for _ in 0..iters {
        let object = poll_ready(pool.acquire()).expect("an object");
        black_box(*object);
        drop(object);
    }
    start.elapsed()
}

// ----- statistics -----

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Nanoseconds per operation.
pub fn ns_per_op(elapsed: Duration, iters: u64) -> f64 {
    elapsed.as_nanos() as f64 / iters as f64
}
