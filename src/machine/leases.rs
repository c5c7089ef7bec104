//! The lease table of a shared pool: the objects lent to at least one
//! borrower, how many leases each has out, and which of them take more,
//! least loaded first.
//!
//! An object with no lease out is not here: it is in the machine's idle
//! list, as in an exclusive pool. An object enters the table with its first
//! lease and leaves it with its last. Each borrower holds a clone of the
//! object (`share`), so the table keeps the original for the next borrower.
//!
//! The objects that take more leases are kept in `room`, a binary min-heap
//! by `(leases, key)` whose entries know their place in it: the least loaded
//! object (the lowest key among equals) is on top.
//!
//! Costs: a lease, a return and a retirement are O(log n) in the number of
//! lent objects (one sift in the heap, with no allocation once it has grown);
//! the least-loaded look-up is O(1).

use slab::Slab;

use super::{CloseReason, ObjectMeta};

/// Why a lent object takes no new leases. It leaves the pool when its last
/// lease comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// To be closed, for this reason.
    Close(CloseReason),
    /// A borrower took it out of the pool ([`detach`](super::PoolState::detach)):
    /// it is dropped, not closed.
    Detached,
}

/// One lent object.
pub(crate) struct Lent<T> {
    pub(crate) object: T,
    pub(crate) meta: ObjectMeta,
    /// Leases out, held by borrowers or by served waiters: at least 1.
    pub(crate) leases: usize,
    /// `None` while it takes new leases.
    pub(crate) retired: Option<Retired>,
    /// Its index in `room`, while it is there.
    room_at: Option<usize>,
}

/// The lent objects of a shared pool.
pub(crate) struct Leases<T> {
    /// Most leases on one object at once.
    max: usize,
    /// Makes a borrower's handle on an object.
    share: fn(&T) -> T,
    lent: Slab<Lent<T>>,
    /// The keys of the lent objects that take new leases (not retired,
    /// fewer than `max` leases out), a min-heap by `(leases, key)`.
    room: Vec<usize>,
    /// Leases out in all.
    total: usize,
}

impl<T> Leases<T> {
    pub(crate) fn new(max: usize, share: fn(&T) -> T) -> Self {
        Leases {
            max,
            share,
            lent: Slab::new(),
            room: Vec::new(),
            total: 0,
        }
    }

    /// Most leases on one object at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Objects lent.
    pub(crate) fn objects(&self) -> usize {
        self.lent.len()
    }

    /// Leases out in all.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// The lent object with the fewest leases that takes one more.
    pub(crate) fn least_loaded(&self) -> Option<usize> {
        self.room.first().copied()
    }

    /// Whether the object at `key` takes one more lease.
    pub(crate) fn has_room(&self, key: usize) -> bool {
        let lent = &self.lent[key];
        lent.retired.is_none() && lent.leases < self.max
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> &mut Lent<T> {
        &mut self.lent[key]
    }

    /// Adds an object with its first lease: its key, a handle on it, and
    /// what the pool knows of it.
    pub(crate) fn insert(&mut self, object: T, meta: ObjectMeta) -> (usize, T, ObjectMeta) {
        let handle = (self.share)(&object);
        let key = self.lent.insert(Lent {
            object,
            meta,
            leases: 1,
            retired: None,
            room_at: None,
        });
        self.total += 1;
        self.place_in_room(key);
        (key, handle, meta)
    }

    /// One more lease on the object at `key` (which must have room): a
    /// handle on it and what the pool knows of it.
    pub(crate) fn lease(&mut self, key: usize) -> (T, ObjectMeta) {
        debug_assert!(self.has_room(key), "a lease on a full or retired object");
        let lent = &self.lent[key];
        let (handle, meta) = ((self.share)(&lent.object), lent.meta);
        self.set_leases(key, lent.leases + 1);
        (handle, meta)
    }

    /// A borrower collects its lease on the object at `key`: counted as a
    /// checkout of the object now (a lease served to a waiter that leaves
    /// without collecting it is not). Returns the object's meta before.
    pub(crate) fn collect(&mut self, key: usize) -> ObjectMeta {
        let meta = &mut self.lent[key].meta;
        let before = *meta;
        meta.checkouts += 1;
        before
    }

    /// Undoes [`collect`](Self::collect): the lease at `key` was collected
    /// for a borrower that never took it. Returns the object's checkouts left.
    pub(crate) fn uncollect(&mut self, key: usize) -> u64 {
        let meta = &mut self.lent[key].meta;
        meta.checkouts -= 1;
        meta.checkouts
    }

    /// A lease on the object at `key` came back. Its last one takes it out
    /// of the table, and it is returned.
    pub(crate) fn give_back(&mut self, key: usize) -> Option<Lent<T>> {
        let leases = self.lent[key].leases;
        if leases > 1 {
            self.set_leases(key, leases - 1);
            return None;
        }
        if let Some(at) = self.lent[key].room_at {
            self.remove_from_room(at);
        }
        self.total -= 1;
        Some(self.lent.remove(key))
    }

    /// The object at `key` takes no new lease from now on. A second
    /// retirement keeps the first reason, with two exceptions, so that one
    /// lease each behaves as an exclusive pool: a detach always wins (a
    /// borrower owns the object now, and the pool must not close it), and
    /// a lease given back dead after the pool closed makes it `Dead`.
    pub(crate) fn retire(&mut self, key: usize, why: Retired) {
        let lent = &mut self.lent[key];
        let closed = Retired::Close(CloseReason::PoolClosed);
        let overrides = why == Retired::Detached
            || (why == Retired::Close(CloseReason::Dead) && lent.retired == Some(closed));
        if overrides {
            lent.retired = Some(why);
        } else {
            lent.retired.get_or_insert(why);
        }
        self.place_in_room(key);
    }

    /// Retires every lent object (the pool is closing).
    pub(crate) fn retire_all(&mut self, why: Retired) {
        self.room.clear();
        for (_, lent) in &mut self.lent {
            lent.retired.get_or_insert(why);
            lent.room_at = None;
        }
    }

    /// Sets the lease count of `key`, keeping `total` and `room` in step.
    fn set_leases(&mut self, key: usize, leases: usize) {
        let lent = &mut self.lent[key];
        self.total = self.total + leases - lent.leases;
        lent.leases = leases;
        self.place_in_room(key);
    }

    // ----- the heap `room` -----

    /// Where `key` ranks in `room`: fewer leases first, then lower keys.
    fn rank(&self, key: usize) -> (usize, usize) {
        (self.lent[key].leases, key)
    }

    /// Puts `key` where its lease count and retirement say: in its place in
    /// `room` if it takes more leases, out of `room` if not.
    fn place_in_room(&mut self, key: usize) {
        match (self.lent[key].room_at, self.has_room(key)) {
            (Some(at), true) => {
                let at = self.sift_up(at);
                self.sift_down(at);
            }
            (Some(at), false) => self.remove_from_room(at),
            (None, true) => {
                self.room.push(key);
                let at = self.room.len() - 1;
                self.lent[key].room_at = Some(at);
                self.sift_up(at);
            }
            (None, false) => {}
        }
    }

    /// Takes the entry at `at` out of `room`; the last entry fills the gap.
    fn remove_from_room(&mut self, at: usize) {
        let key = self.room.swap_remove(at);
        self.lent[key].room_at = None;
        if at < self.room.len() {
            let moved = self.room[at];
            self.lent[moved].room_at = Some(at);
            let at = self.sift_up(at);
            self.sift_down(at);
        }
    }

    fn swap_in_room(&mut self, a: usize, b: usize) {
        self.room.swap(a, b);
        let (key_a, key_b) = (self.room[a], self.room[b]);
        self.lent[key_a].room_at = Some(a);
        self.lent[key_b].room_at = Some(b);
    }

    /// Moves the entry at `at` up while it ranks before its parent; returns
    /// where it ends.
    fn sift_up(&mut self, mut at: usize) -> usize {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.rank(self.room[at]) >= self.rank(self.room[parent]) {
                break;
            }
            self.swap_in_room(at, parent);
            at = parent;
        }
        at
    }

    /// Moves the entry at `at` down while a child ranks before it.
    fn sift_down(&mut self, mut at: usize) {
        loop {
            let mut first = at;
            for child in [2 * at + 1, 2 * at + 2] {
                if child < self.room.len()
                    && self.rank(self.room[child]) < self.rank(self.room[first])
                {
                    first = child;
                }
            }
            if first == at {
                return;
            }
            self.swap_in_room(at, first);
            at = first;
        }
    }

    /// Checks the table: every object has between 1 and `max` leases, they
    /// add up to `total`, and `room` is a heap of exactly the objects that
    /// take more, each knowing its place.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut total = 0;
        let mut room = 0;
        for (key, lent) in &self.lent {
            if lent.leases == 0 || lent.leases > self.max {
                return Err(format!(
                    "object {} has {} leases (1 to {} allowed)",
                    lent.meta.id, lent.leases, self.max
                ));
            }
            total += lent.leases;
            let placed = lent
                .room_at
                .is_some_and(|at| self.room.get(at) == Some(&key));
            if placed != self.has_room(key) {
                return Err(format!(
                    "object {} misplaced in the least-loaded heap",
                    lent.meta.id
                ));
            }
            room += usize::from(placed);
        }
        if total != self.total {
            return Err(format!("{total} leases out, counted {}", self.total));
        }
        if room != self.room.len() {
            return Err("the least-loaded heap holds objects it should not".into());
        }
        for at in 1..self.room.len() {
            if self.rank(self.room[at]) < self.rank(self.room[(at - 1) / 2]) {
                return Err("the least-loaded heap is out of order".into());
            }
        }
        Ok(())
    }
}
