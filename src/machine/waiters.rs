//! The waiter registry: a FIFO queue with O(1) removal from anywhere.
//!
//! Waiters live in a slab (`Vec<Slot>` plus a free list). The waiting ones are
//! also linked into a doubly linked list, oldest at the head, so that
//! - registering a waiter is O(1) amortised (a push on the slab),
//! - serving the oldest is O(1) (unlink the head),
//! - cancelling any waiter, even one in the middle of 10,000, is O(1) (unlink by key).
//!
//! A served waiter leaves the queue but keeps its slot, holding its outcome,
//! until its owner collects it. Each slot has a generation that changes when
//! the slot is freed, so a key that outlived its waiter never reaches the
//! waiter that reuses the slot.

/// Where a waiter lives: its slot index and the slot's generation when it was registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Key {
    index: usize,
    generation: u64,
}

/// What one slot of the slab holds.
enum Slot<W, O> {
    /// Unused; `next_free` links the free list.
    Free { next_free: Option<usize> },
    /// Queued, waiting to be served, with the driver's payload (a waker, say).
    Waiting {
        payload: W,
        prev: Option<usize>,
        next: Option<usize>,
    },
    /// Served and out of the queue; the outcome waits for its owner.
    Served(O),
}

struct Entry<W, O> {
    generation: u64,
    slot: Slot<W, O>,
}

/// What a waiter's slot held when it was taken out of the registry.
pub(crate) enum Taken<W, O> {
    /// It was still waiting (it has now left the queue).
    Waiting(W),
    /// It had been served with this outcome.
    Served(O),
}

/// The FIFO registry of waiters. `W` is the driver's payload, `O` an outcome.
pub(crate) struct Waiters<W, O> {
    entries: Vec<Entry<W, O>>,
    free_head: Option<usize>,
    head: Option<usize>,
    tail: Option<usize>,
    waiting: usize,
    served: usize,
}

impl<W, O> Waiters<W, O> {
    pub(crate) fn new() -> Self {
        Waiters {
            entries: Vec::new(),
            free_head: None,
            head: None,
            tail: None,
            waiting: 0,
            served: 0,
        }
    }

    /// How many waiters are queued (not yet served).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// How many waiters were served and have not collected their outcome yet.
    #[cfg(test)]
    pub(crate) fn served(&self) -> usize {
        self.served
    }

    /// Queues a new waiter at the tail.
    pub(crate) fn push(&mut self, payload: W) -> Key {
        let slot = Slot::Waiting {
            payload,
            prev: self.tail,
            next: None,
        };
        let index = match self.free_head {
            Some(index) => {
                let entry = &mut self.entries[index];
                let Slot::Free { next_free } = entry.slot else {
                    unreachable!("the free list links only free slots")
                };
                self.free_head = next_free;
                entry.slot = slot;
                index
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    slot,
                });
                self.entries.len() - 1
            }
        };
        match self.tail {
            Some(tail) => self.set_next(tail, Some(index)),
            None => self.head = Some(index),
        }
        self.tail = Some(index);
        self.waiting += 1;
        Key {
            index,
            generation: self.entries[index].generation,
        }
    }

    /// Serves the oldest waiter with `outcome`; returns its payload, or gives
    /// the outcome back when nobody waits.
    pub(crate) fn serve_oldest(&mut self, outcome: O) -> Result<W, O> {
        let Some(index) = self.head else {
            return Err(outcome);
        };
        self.unlink(index);
        let slot = std::mem::replace(&mut self.entries[index].slot, Slot::Served(outcome));
        self.served += 1;
        match slot {
            Slot::Waiting { payload, .. } => Ok(payload),
            _ => unreachable!("the queue links only waiting slots"),
        }
    }

    /// The payload of a waiter that is still queued.
    pub(crate) fn payload_mut(&mut self, key: &Key) -> Option<&mut W> {
        match self.entries.get_mut(key.index) {
            Some(Entry {
                generation,
                slot: Slot::Waiting { payload, .. },
            }) if *generation == key.generation => Some(payload),
            _ => None,
        }
    }

    /// Whether `key` names a live waiter (queued or served) of this registry.
    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.entries.get(key.index).is_some_and(|entry| {
            entry.generation == key.generation && !matches!(entry.slot, Slot::Free { .. })
        })
    }

    /// Removes a waiter wherever it is (queued or served) and frees its slot.
    /// Returns `None` when the key names no live waiter.
    pub(crate) fn take(&mut self, key: Key) -> Option<Taken<W, O>> {
        if !self.contains(&key) {
            return None;
        }
        if matches!(self.entries[key.index].slot, Slot::Waiting { .. }) {
            self.unlink(key.index);
        }
        let entry = &mut self.entries[key.index];
        entry.generation = entry.generation.wrapping_add(1);
        let slot = std::mem::replace(
            &mut entry.slot,
            Slot::Free {
                next_free: self.free_head,
            },
        );
        self.free_head = Some(key.index);
        match slot {
            Slot::Waiting { payload, .. } => Some(Taken::Waiting(payload)),
            Slot::Served(outcome) => {
                self.served -= 1;
                Some(Taken::Served(outcome))
            }
            Slot::Free { .. } => unreachable!("checked by contains"),
        }
    }

    /// Takes the outcome of a served waiter, freeing its slot; gives the key
    /// back while the waiter is still queued.
    pub(crate) fn take_served(&mut self, key: Key) -> Result<Option<O>, Key> {
        let next_free = self.free_head;
        let entry = match self.entries.get_mut(key.index) {
            Some(entry) if entry.generation == key.generation => entry,
            _ => return Ok(None),
        };
        match entry.slot {
            Slot::Waiting { .. } => return Err(key),
            Slot::Free { .. } => return Ok(None),
            Slot::Served(_) => {}
        }
        // Served: out of the queue already, so only the slot is freed.
        entry.generation = entry.generation.wrapping_add(1);
        let Slot::Served(outcome) = std::mem::replace(&mut entry.slot, Slot::Free { next_free })
        else {
            unreachable!("matched above")
        };
        self.free_head = Some(key.index);
        self.served -= 1;
        Ok(Some(outcome))
    }

    /// Unlinks a waiting slot from the queue (its slot stays as it is).
    fn unlink(&mut self, index: usize) {
        let Slot::Waiting { prev, next, .. } = self.entries[index].slot else {
            unreachable!("only waiting slots are linked")
        };
        match prev {
            Some(prev) => self.set_next(prev, next),
            None => self.head = next,
        }
        match next {
            Some(next) => self.set_prev(next, prev),
            None => self.tail = prev,
        }
        self.waiting -= 1;
    }

    fn set_next(&mut self, index: usize, to: Option<usize>) {
        if let Slot::Waiting { next, .. } = &mut self.entries[index].slot {
            *next = to;
        }
    }

    fn set_prev(&mut self, index: usize, to: Option<usize>) {
        if let Slot::Waiting { prev, .. } = &mut self.entries[index].slot {
            *prev = to;
        }
    }

    /// Bytes the slab holds per registered waiter (for the memory figures).
    pub(crate) fn bytes_per_waiter() -> usize {
        std::mem::size_of::<Entry<W, O>>()
    }

    /// Checks the queue's own invariants: the links agree in both directions,
    /// the queue holds exactly `waiting` slots, oldest first, and the served
    /// and free slots add up with them to the slab's length.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut count = 0;
        let mut prev = None;
        let mut cursor = self.head;
        while let Some(index) = cursor {
            let Slot::Waiting {
                prev: back, next, ..
            } = self.entries[index].slot
            else {
                return Err(format!("queued slot {index} is not waiting"));
            };
            if back != prev {
                return Err(format!("slot {index} links back to {back:?}, not {prev:?}"));
            }
            count += 1;
            if count > self.entries.len() {
                return Err("the waiter queue has a cycle".into());
            }
            prev = Some(index);
            cursor = next;
        }
        if prev != self.tail {
            return Err(format!(
                "the queue ends at {prev:?}, tail is {:?}",
                self.tail
            ));
        }
        if count != self.waiting {
            return Err(format!("{count} linked waiters, {} counted", self.waiting));
        }
        let served = self
            .entries
            .iter()
            .filter(|e| matches!(e.slot, Slot::Served(_)))
            .count();
        let waiting = self
            .entries
            .iter()
            .filter(|e| matches!(e.slot, Slot::Waiting { .. }))
            .count();
        if served != self.served || waiting != self.waiting {
            return Err(format!(
                "slab holds {waiting} waiting and {served} served, counted {} and {}",
                self.waiting, self.served
            ));
        }
        let mut free = 0;
        let mut cursor = self.free_head;
        while let Some(index) = cursor {
            let Slot::Free { next_free } = self.entries[index].slot else {
                return Err(format!("free list links used slot {index}"));
            };
            free += 1;
            if free > self.entries.len() {
                return Err("the free list has a cycle".into());
            }
            cursor = next_free;
        }
        if free + served + waiting != self.entries.len() {
            return Err(format!(
                "{free} free + {served} served + {waiting} waiting != {} slots",
                self.entries.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(w: &mut Waiters<u32, &'static str>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Ok(payload) = w.serve_oldest("x") {
            out.push(payload);
        }
        out
    }

    #[test]
    fn serves_oldest_first_and_cancels_from_the_middle() {
        let mut w = Waiters::new();
        let _a = w.push(1);
        let b = w.push(2);
        let _c = w.push(3);
        assert!(matches!(w.take(b), Some(Taken::Waiting(2))));
        w.check().unwrap();
        assert_eq!(order(&mut w), vec![1, 3]);
        assert_eq!(w.served(), 2);
        w.check().unwrap();
    }

    #[test]
    fn a_stale_key_reaches_nobody() {
        let mut w: Waiters<u32, ()> = Waiters::new();
        let a = w.push(1);
        let stale = Key {
            index: a.index,
            generation: a.generation,
        };
        assert!(w.take(a).is_some());
        let b = w.push(2);
        assert_eq!(b.index, stale.index, "the slot is reused");
        assert!(w.payload_mut(&stale).is_none());
        assert!(w.take(stale).is_none());
        assert_eq!(w.waiting(), 1);
        w.check().unwrap();
    }

    #[test]
    fn take_served_gives_the_key_back_while_waiting() {
        let mut w = Waiters::new();
        let a = w.push(7);
        let a = w.take_served(a).unwrap_err();
        assert_eq!(w.serve_oldest("done"), Ok(7));
        assert_eq!(w.take_served(a), Ok(Some("done")));
        assert_eq!((w.waiting(), w.served()), (0, 0));
        w.check().unwrap();
    }
}
