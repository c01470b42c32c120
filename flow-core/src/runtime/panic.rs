//! Operator names, and which operator a user function's panic came from.
//!
//! Every call of a user function runs under a [`PanicGuard`] that is `forget`-ed on the
//! normal path, so naming the operator costs nothing unless the function panics. The task
//! that catches the panic reads the name with [`take_panicked_op`] and fails the job with it.
use std::sync::Arc;

/// Name and declaration site of an operator, shown in plans, metrics and panic reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpName {
    kind: Arc<str>,
    at: Arc<str>,
    full: Arc<str>,
}

impl OpName {
    /// The operator `kind` (`map`, `window`, ...) declared at `loc` in the job's source.
    pub(crate) fn new(kind: &str, loc: &std::panic::Location<'_>) -> Self {
        let at: Arc<str> = format!("{}:{}", loc.file(), loc.line()).into();
        OpName {
            full: format!("{kind} ({at})").into(),
            kind: kind.into(),
            at,
        }
    }
    /// The operator's display name: its kind and where it was declared.
    pub(crate) fn as_str(&self) -> &str {
        &self.full
    }
    /// The operator's kind, e.g. `map`.
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }
    /// Where the operator was declared, `file:line`.
    pub(crate) fn declared_at(&self) -> &str {
        &self.at
    }
}

/// A user function together with the name of the operator it belongs to.
#[derive(Clone)]
pub(crate) struct Named<F> {
    pub(crate) f: F,
    pub(crate) name: OpName,
}

thread_local! {
    static PANICKED_OP: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Records which operator a panic unwound through. Created around every call of a user
/// function and `forget`-ed on the normal path, so it costs nothing unless the function panics.
pub(crate) struct PanicGuard<'a>(pub(crate) &'a OpName);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        // Only reached while unwinding (the normal path forgets the guard). The innermost guard
        // is dropped first; keep its name.
        PANICKED_OP.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Some(self.0.full.clone());
            }
        });
    }
}

/// Takes the name of the operator whose user function last panicked on this thread.
pub(crate) fn take_panicked_op() -> Option<Arc<str>> {
    PANICKED_OP.with(|p| p.borrow_mut().take())
}

/// Calls a user function under a [`PanicGuard`].
macro_rules! guarded {
    ($name:expr, $call:expr) => {{
        let guard = $crate::runtime::panic::PanicGuard(&$name);
        let out = $call;
        std::mem::forget(guard);
        out
    }};
}
pub(crate) use guarded;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_function_is_named_by_the_innermost_guard() {
        let outer = OpName::new("outer", std::panic::Location::caller());
        let inner = OpName::new("map", std::panic::Location::caller());
        let boom = |x: u32| -> u32 {
            if x > 0 {
                panic!("boom")
            }
            x
        };
        let r = std::panic::catch_unwind(|| guarded!(outer, guarded!(inner, boom(1)) + 1));
        assert!(r.is_err());
        assert_eq!(take_panicked_op().as_deref(), Some(inner.as_str()));
        assert_eq!(take_panicked_op(), None, "taking the name clears it");
    }

    #[test]
    fn a_function_that_returns_leaves_no_name_behind() {
        let name = OpName::new("map", std::panic::Location::caller());
        assert_eq!(guarded!(name, 1 + 1), 2);
        assert_eq!(take_panicked_op(), None);
    }
}
