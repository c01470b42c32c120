//! The producers waiting for room in one bounded channel, and the handshake that makes sure
//! none of them sleeps with room in the channel.
//!
//! A producer whose send finds the channel full calls [`Waiters::register`] and then tries
//! once more; the consumer calls [`Waiters::take_if_any`] after every receive and notifies
//! the tasks it returns.
//!
//! This is a store-buffering pattern. The producer writes the flag, then reads the channel
//! (its retry); the consumer writes the channel (a receive frees a slot), then reads the flag.
//! Each side has a `SeqCst` fence between its write and its read, so the two fences are
//! ordered one way or the other: either the producer's retry sees the freed slot, or the
//! consumer sees the flag and notifies the producer. A producer is never left idle with room
//! in the channel. This relies on nothing inside the channel beyond its own synchronisation of
//! the messages. The model of this handshake is the `waiters_*` tests of
//! `flow-core/tests/loom.rs`; see [`crate::runtime::sync`] for how to run it.
//!
//! Cost when nobody waits: the consumer's side is one fence and one relaxed load.
use crate::runtime::sync::{fence, AtomicBool, Mutex, Ordering};

/// The tasks waiting for room in one channel (see the module docs).
#[derive(Debug)]
pub struct Waiters {
    ids: Mutex<Vec<usize>>,
    /// Whether `ids` may be non-empty: the consumer's lock-free check.
    any: AtomicBool,
}

impl Default for Waiters {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiters {
    /// Nobody waiting.
    pub fn new() -> Self {
        Waiters {
            ids: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
        }
    }

    /// Producer side: task `id` found the channel full. Call before trying to send once more;
    /// if that retry fails too, the task may go idle: a later receive notifies it.
    pub fn register(&self, id: usize) {
        {
            let mut ids = self.ids.lock();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.any.store(true, Ordering::Relaxed);
        // Orders the flag's store before the retry's look at the channel (module docs).
        fence(Ordering::SeqCst);
    }

    /// Consumer side: call after every receive. Returns the tasks to notify (empty, without
    /// allocating, when nobody waits).
    #[inline]
    pub fn take_if_any(&self) -> Vec<usize> {
        // Orders the receive (which freed a slot) before the flag's load (module docs).
        fence(Ordering::SeqCst);
        if !self.any.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut ids = self.ids.lock();
        self.any.store(false, Ordering::Relaxed);
        std::mem::take(&mut *ids)
    }
}
