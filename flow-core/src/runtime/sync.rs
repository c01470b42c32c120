//! The synchronisation primitives of the runtime's lock-free protocols, swappable for loom's.
//!
//! [`super::task_state`] (the scheduler's per-task state machine) and
//! [`super::exchange::waiters`] (the full-channel handshake) take their atomics, fences and
//! mutexes from here, and nothing else does. A normal build re-exports `std::sync::atomic`
//! and `parking_lot::Mutex`, so the protocols cost exactly what they did before. A build with
//! `RUSTFLAGS="--cfg loom"` uses [loom](https://docs.rs/loom)'s instead, whose model checker
//! runs a test under every interleaving and every memory-model-allowed outcome of its loads;
//! the models are in `flow-core/tests/loom.rs`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p flow-core --test loom --release
//! ```
//!
//! (`.ci/run` runs it after the normal tests, with `CARGO_PROFILE_RELEASE_LTO=false` and
//! `CARGO_PROFILE_RELEASE_DEBUG=false`, which build it faster.)
//!
//! (A separate target directory, because `--cfg loom` changes the flags of every crate and
//! would otherwise invalidate the normal build.) In a loom build the rest of the crate still
//! compiles, but only code running inside `loom::model` may touch these two types.

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

/// loom's mutex behind `parking_lot`'s interface: `lock` returns the guard itself.
#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // A poisoned lock means a model thread already panicked: that panic is the failure.
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
