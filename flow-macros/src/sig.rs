//! Signature checks shared by the macros: both take a plain, non-generic free
//! function.

use syn::ext::IdentExt;
use syn::{FnArg, Signature};

use crate::ctxt::Ctxt;

/// How a macro's errors speak of the annotated function.
pub(crate) struct FnRole {
    /// The function's role with its article, e.g. "a stream job".
    pub(crate) what: &'static str,
    /// Why it cannot be `async`, e.g. "it runs to completion on each record".
    pub(crate) why_not_async: &'static str,
}

/// Records each qualifier (`const`, `async`, `unsafe`, `extern`), generic
/// parameter list, `where` clause and variadic argument of `sig`, each on its
/// own tokens, in that order.
pub(crate) fn check_plain(cx: &mut Ctxt, sig: &Signature, role: &FnRole) {
    let FnRole {
        what,
        why_not_async,
    } = role;
    if let Some(token) = &sig.constness {
        cx.error_spanned_by(token, format_args!("{what} cannot be `const`"));
    }
    if let Some(token) = &sig.asyncness {
        cx.error_spanned_by(
            token,
            format_args!("{what} cannot be `async`: {why_not_async}"),
        );
    }
    if let Some(token) = &sig.unsafety {
        cx.error_spanned_by(token, format_args!("{what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, format_args!("{what} cannot be `extern`"));
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format_args!("{what} cannot have generic parameters"),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format_args!("{what} cannot have a `where` clause"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format_args!("{what} cannot be variadic"));
    }
}

/// Records each `self` parameter of `sig`: the function must be free.
pub(crate) fn check_no_receiver(cx: &mut Ctxt, sig: &Signature, role: &FnRole) {
    for input in &sig.inputs {
        if let FnArg::Receiver(receiver) = input {
            cx.error_spanned_by(
                receiver,
                format_args!("{} is a free function and cannot take `self`", role.what),
            );
        }
    }
}

/// Whether the function is named `main` (raw or not).
pub(crate) fn is_named_main(sig: &Signature) -> bool {
    sig.ident.unraw() == "main"
}

/// Records a function named `main`, for a macro that generates `main`
/// itself; `why` says so and what to name the function instead.
pub(crate) fn check_not_main(cx: &mut Ctxt, sig: &Signature, role: &FnRole, why: &str) {
    if is_named_main(sig) {
        cx.error_spanned_by(
            &sig.ident,
            format_args!("{} cannot be named `main`: {why}", role.what),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{error_list, tokens};

    const ROLE: FnRole = FnRole {
        what: "a demo",
        why_not_async: "it is a demo",
    };

    /// Each error recorded by `check` on the signature of `item`, with the
    /// source text it is spanned on.
    fn errors(item: &str, check: impl FnOnce(&mut Ctxt, &Signature)) -> Vec<(String, String)> {
        let func: syn::ItemFn = syn::parse2(tokens(item)).expect("test input must be a function");
        let mut cx = Ctxt::new();
        check(&mut cx, &func.sig);
        cx.check()
            .err()
            .as_ref()
            .map(error_list)
            .unwrap_or_default()
    }

    #[test]
    fn plain_function_passes() {
        assert_eq!(
            errors("pub(crate) fn f(a: u8) -> u8 { a }", |cx, sig| {
                check_plain(cx, sig, &ROLE);
                check_no_receiver(cx, sig, &ROLE);
                check_not_main(cx, sig, &ROLE, "rename it");
            }),
            []
        );
    }

    #[test]
    fn every_problem_in_order() {
        let item = "const async unsafe extern \"C\" fn f<T>(&self, a: T, ...) where T: Copy {}";
        let errors = errors(item, |cx, sig| {
            check_plain(cx, sig, &ROLE);
            check_no_receiver(cx, sig, &ROLE);
        });
        assert_eq!(
            errors,
            [
                ("a demo cannot be `const`".into(), "const".into()),
                (
                    "a demo cannot be `async`: it is a demo".into(),
                    "async".into()
                ),
                ("a demo cannot be `unsafe`".into(), "unsafe".into()),
                ("a demo cannot be `extern`".into(), "extern \"C\"".into()),
                ("a demo cannot have generic parameters".into(), "<T>".into()),
                (
                    "a demo cannot have a `where` clause".into(),
                    "where T: Copy".into()
                ),
                ("a demo cannot be variadic".into(), "...".into()),
                (
                    "a demo is a free function and cannot take `self`".into(),
                    "&self".into()
                ),
            ]
        );
    }

    #[test]
    fn named_main() {
        for item in ["fn main() {}", "fn r#main() {}"] {
            let errors = errors(item, |cx, sig| {
                assert!(is_named_main(sig));
                check_not_main(cx, sig, &ROLE, "rename it");
            });
            assert_eq!(errors.len(), 1, "{item}");
            assert_eq!(errors[0].0, "a demo cannot be named `main`: rename it");
        }
    }
}
