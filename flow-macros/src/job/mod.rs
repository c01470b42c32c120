//! `#[stream_job]`: parse the attribute and the function ([`parse`]), check
//! them into a [`Job`] ([`check`]), and generate the binary's `main`
//! ([`codegen`]).
//!
//! Everything here works on `proc_macro2` tokens so the unit tests can drive
//! it without a compiler.

mod check;
mod codegen;
mod parse;

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{Ident, Type};

use crate::ctxt::Ctxt;
use crate::sig::is_named_main;

/// Expands `#[stream_job(attr)] item`.
///
/// A valid job expands to the function unchanged plus a `main` that runs it.
/// Otherwise the function is kept unchanged (so the rest of the crate still
/// type-checks and IDEs keep working), every problem found is reported as its
/// own `compile_error!`, and a stub `main` keeps the compiler from adding a
/// spurious "`main` function not found" error.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match analyze(attr, item.clone()) {
        Ok(job) => job.generate(item),
        Err(rejection) => rejection.into_tokens(item),
    }
}

/// A checked stream job: everything code generation needs.
struct Job {
    /// The job's name, for the command line (`name = "..."` or the function's).
    name: String,
    /// The command line's about text (`about = "..."` or the doc comments).
    about: String,
    /// The job function's name.
    ident: Ident,
    /// The type of the job's second parameter, its command-line arguments.
    args_ty: Type,
    /// The job function's declared return type.
    output: Type,
}

/// Why a stream job was rejected, and how to report it.
struct Rejection {
    /// Every problem found, combined.
    errors: syn::Error,
    /// Whether to emit a stub `main`: not when the item is not a function,
    /// nor when the function is itself named `main`.
    stub_main: bool,
}

/// Parses and checks the attribute arguments and the annotated item,
/// collecting every problem rather than stopping at the first.
fn analyze(attr: TokenStream, item: TokenStream) -> Result<Job, Rejection> {
    let mut cx = Ctxt::new();
    let attrs = parse::JobAttrs::parse(&mut cx, attr);

    let func = match parse::function(item) {
        Ok(func) => func,
        Err(error) => {
            cx.syn_error(error);
            return cx.finish(None).map_err(|errors| Rejection {
                errors,
                stub_main: false,
            });
        }
    };

    let checked = check::check_signature(&mut cx, &func.sig);
    let stub_main = !is_named_main(&func.sig);
    let job = checked.map(|(args_ty, output)| Job {
        name: match attrs.name {
            Some(name) => name.value(),
            None => func.sig.ident.unraw().to_string(),
        },
        about: match attrs.about {
            Some(about) => about.value(),
            None => parse::doc_text(&func.attrs),
        },
        ident: func.sig.ident.clone(),
        args_ty: args_ty.clone(),
        output: output.clone(),
    });
    cx.finish(job)
        .map_err(|errors| Rejection { errors, stub_main })
}

/// Helpers shared by the unit tests of `job`'s modules.
#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::testing::{error_list, tokens};

    /// Runs the analysis expecting success.
    pub(super) fn accepted(attr: &str, item: &str) -> Job {
        match analyze(tokens(attr), tokens(item)) {
            Ok(job) => job,
            Err(rejection) => panic!("unexpected errors: {}", rejection.errors),
        }
    }

    /// Runs the analysis expecting failure: the rejection, and each error's
    /// message with the source text it is spanned on.
    pub(super) fn rejected(attr: &str, item: &str) -> (Rejection, Vec<(String, String)>) {
        let Err(rejection) = analyze(tokens(attr), tokens(item)) else {
            panic!("expected errors for `{item}`");
        };
        let errors = error_list(&rejection.errors);
        (rejection, errors)
    }

    /// The single error for `item`: its message and the source text it is
    /// spanned on.
    pub(super) fn single_error(attr: &str, item: &str) -> (String, String) {
        let (_, mut errors) = rejected(attr, item);
        assert_eq!(errors.len(), 1, "expected exactly one error: {errors:#?}");
        errors.remove(0)
    }

    /// A valid, documented job.
    pub(super) const VALID: &str = "
        /// Counts words.
        fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> { Ok(()) }
    ";
}

#[cfg(test)]
mod tests {
    use super::tests_support::{accepted, rejected, VALID};
    use crate::testing::normalized;
    use quote::quote;

    #[test]
    fn name_defaults_to_the_function_name_and_about_to_the_docs() {
        let job = accepted("", VALID);
        assert_eq!(job.name, "word_count");
        assert_eq!(job.about, "Counts words.");
        assert_eq!(job.ident, "word_count");
        assert_eq!(normalized(&job.args_ty), "WordCountArgs");
        assert_eq!(
            normalized(&job.output),
            normalized(quote!(flow_core::Result<()>))
        );
    }

    #[test]
    fn raw_identifier_names_are_unraw() {
        let job = accepted(
            "",
            "fn r#type(env: &mut Env, args: A) -> flow_core::Result<()> { Ok(()) }",
        );
        assert_eq!(job.name, "type");
    }

    #[test]
    fn all_problems_are_reported_together() {
        let (rejection, errors) =
            rejected(r#"foo = "x", name = 1"#, "async fn job<T>(env: &Env) { }");
        let messages: Vec<&str> = errors.iter().map(|(message, _)| message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown stream_job attribute `foo`; expected `name` or `about`",
                "`name` must be a string literal, e.g. `name = \"word_count\"`",
                "a stream job cannot be `async`: it builds its dataflow synchronously \
                 and the runtime then runs it",
                "a stream job cannot have generic parameters",
                "the first parameter of a stream job must be `&mut Env`",
                "missing the job's arguments: a stream job's second parameter is a struct \
                 deriving `Args`, e.g. \
                 `fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>` \
                 with `#[derive(Args)] struct MyArgs {}`",
                "a stream job returns `flow_core::Result<()>`; \
                 add `-> flow_core::Result<()>` after the parameters",
            ]
        );
        assert!(rejection.stub_main);
    }
}
