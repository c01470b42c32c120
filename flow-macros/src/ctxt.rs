//! Error context: collects every problem found in a macro's input so they can
//! be reported together instead of one compile at a time.

use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;

/// Collects [`syn::Error`]s while a macro's input is checked.
///
/// Each check records its problem, spanned on the offending tokens, and goes
/// on; [`Ctxt::finish`] (or [`Ctxt::check`]) then reports all of them at once
/// as one combined error, which expands to one `compile_error!` per problem.
///
/// A context must end with `finish` or `check`: dropping one that was never
/// ended is a bug in flow-macros (its errors would be lost silently), and
/// panics.
pub(crate) struct Ctxt {
    /// The errors recorded so far; `None` once they were taken by `finish`
    /// or `check`.
    errors: Option<Vec<syn::Error>>,
}

impl Ctxt {
    /// An empty context.
    pub(crate) fn new() -> Self {
        Self {
            errors: Some(Vec::new()),
        }
    }

    /// Records an error spanned on `tokens` (from their first to their last
    /// token).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at a single span.
    pub(crate) fn error_at<M: Display>(&mut self, span: Span, message: M) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error produced by a `syn` parser.
    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.push(error);
    }

    fn push(&mut self, error: syn::Error) {
        // `finish` and `check` consume the context, so `errors` is always
        // `Some` here; recreating the list keeps this infallible anyway.
        self.errors.get_or_insert_with(Vec::new).push(error);
    }

    /// Ends the checks: `Ok(value)` when no error was recorded, else every
    /// recorded error combined into one.
    ///
    /// `value` is `None` only when a check failed, and a failing check records
    /// an error; should that ever not hold, an error saying so is returned
    /// rather than panicking inside the compiler.
    #[must_use = "the collected errors must be reported"]
    pub(crate) fn finish<T>(self, value: Option<T>) -> syn::Result<T> {
        self.check()?;
        value.ok_or_else(|| {
            syn::Error::new(
                Span::call_site(),
                "internal error in flow-macros: a check failed without reporting why",
            )
        })
    }

    /// Ends the checks when there is no value to return: `Ok(())` when no
    /// error was recorded, else every recorded error combined into one.
    #[must_use = "the collected errors must be reported"]
    pub(crate) fn check(mut self) -> syn::Result<()> {
        let combined =
            self.errors
                .take()
                .unwrap_or_default()
                .into_iter()
                .reduce(|mut all, next| {
                    all.combine(next);
                    all
                });
        match combined {
            Some(errors) => Err(errors),
            None => Ok(()),
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        // Not while unwinding from another panic: that would abort, hiding
        // the first panic's message.
        if let Some(errors) = &self.errors {
            if !std::thread::panicking() {
                panic!(
                    "flow-macros bug: an error context was dropped without `finish` or `check` \
                     ({} unreported error(s)); please report this",
                    errors.len()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn clean_context_yields_the_value() {
        assert_eq!(Ctxt::new().finish(Some(7)).ok(), Some(7));
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn errors_are_combined_in_order() {
        let mut cx = Ctxt::new();
        cx.error_at(Span::call_site(), "first");
        cx.error_spanned_by(quote::quote!(a b c), "second");
        cx.syn_error(syn::Error::new(Span::call_site(), "third"));
        let errors = cx.finish(Some(())).err();
        assert_eq!(
            errors.map(messages),
            Some(vec!["first".into(), "second".into(), "third".into()])
        );
    }

    #[test]
    fn check_reports_the_errors() {
        let mut cx = Ctxt::new();
        cx.error_at(Span::call_site(), "only");
        assert_eq!(cx.check().err().map(messages), Some(vec!["only".into()]));
    }

    #[test]
    fn missing_value_without_error_is_reported() {
        let errors = Ctxt::new().finish::<()>(None).err();
        let messages = errors.map(messages).unwrap_or_default();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].starts_with("internal error"));
    }

    #[test]
    #[should_panic(
        expected = "flow-macros bug: an error context was dropped without `finish` \
                               or `check` (1 unreported error(s))"
    )]
    fn dropping_unreported_errors_panics() {
        let mut cx = Ctxt::new();
        cx.error_at(Span::call_site(), "lost");
        drop(cx);
    }

    #[test]
    #[should_panic(
        expected = "flow-macros bug: an error context was dropped without `finish` \
                               or `check` (0 unreported error(s))"
    )]
    fn dropping_an_unchecked_context_panics_even_without_errors() {
        drop(Ctxt::new());
    }
}
