//! Error context: collects every problem found in a macro's input so they can
//! be reported together instead of one compile at a time.

use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;

/// Collects [`syn::Error`]s while a macro's input is checked.
///
/// Each check records its problem, spanned on the offending tokens, and goes
/// on; [`Ctxt::finish`] then reports all of them at once as one combined
/// error, which expands to one `compile_error!` per problem.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// An empty context.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error spanned on `tokens` (from their first to their last
    /// token).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at a single span.
    pub(crate) fn error_at<M: Display>(&mut self, span: Span, message: M) {
        self.errors.push(syn::Error::new(span, message));
    }

    /// Records an error produced by a `syn` parser.
    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Ends the checks: `Ok(value)` when no error was recorded, else every
    /// recorded error combined into one.
    ///
    /// `value` is `None` only when a check failed, and a failing check records
    /// an error; should that ever not hold, an error saying so is returned
    /// rather than panicking inside the compiler.
    #[must_use = "the collected errors must be reported"]
    pub(crate) fn finish<T>(self, value: Option<T>) -> syn::Result<T> {
        let combined = self.errors.into_iter().reduce(|mut all, next| {
            all.combine(next);
            all
        });
        match (combined, value) {
            (Some(errors), _) => Err(errors),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(syn::Error::new(
                Span::call_site(),
                "internal error in flow-macros: a check failed without reporting why",
            )),
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
    fn missing_value_without_error_is_reported() {
        let errors = Ctxt::new().finish::<()>(None).err();
        let messages = errors.map(messages).unwrap_or_default();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].starts_with("internal error"));
    }
}
