//! Generating a stream job's `main`, or the stub that stands in for it when
//! the job was rejected.
//!
//! The generated code names `flow_core` only through its hidden
//! `::flow_core::__private` facade, so that `flow_core` can move its modules
//! without breaking it.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::{Job, Rejection};
use crate::syntax::span_range;

impl Job {
    /// The function unchanged, plus a `main` that runs it (and, for test
    /// builds, which have no such `main`, a use of the function).
    pub(super) fn generate(&self, item: TokenStream) -> TokenStream {
        let Self {
            name,
            about,
            ident,
            args_ty,
            output,
        } = self;

        // `job_main::<ArgsType, _>` spans the arguments' type, so an
        // unsatisfied `ArgsType: clap::Args` bound points at the user's type.
        let (args_start, args_end) = span_range(args_ty);
        let job_main = quote_spanned!(args_start=> ::flow_core::__private::job_main::<#args_ty,);
        let job_main_end = quote_spanned!(args_end=> _>);

        // The job function's path spans its return type, so a return type
        // other than `flow_core::Result<()>` is reported there. The empty
        // generic argument list is valid on any non-generic function; its
        // closing `>` carries the return type's last span so the whole type
        // is underlined, not only its first token.
        let (output_start, output_end) = span_range(output);
        let mut job_fn = ident.clone();
        job_fn.set_span(output_start);
        let job_fn_end = quote_spanned!(output_end=> >);

        quote! {
            #item

            #[cfg(not(test))]
            fn main() -> ::std::process::ExitCode {
                #job_main #job_main_end(
                    ::flow_core::__private::JobInfo { name: #name, about: #about },
                    #job_fn::< #job_fn_end,
                )
            }

            // Test builds have no such `main`; this use keeps the job function
            // (and all it uses) from being reported as dead code there.
            #[cfg(test)]
            const _: () = {
                let _ = #ident;
            };
        }
    }
}

impl Rejection {
    /// The function (or item) unchanged, the errors, and the stub `main`
    /// when one is wanted.
    pub(super) fn into_tokens(self, item: TokenStream) -> TokenStream {
        let errors = self.errors.to_compile_error();
        let stub_main = self.stub_main.then(|| {
            quote! {
                #[cfg(not(test))]
                fn main() -> ::std::process::ExitCode {
                    ::std::process::ExitCode::FAILURE
                }
            }
        });
        quote! {
            #item
            #errors
            #stub_main
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::{Item, ItemFn};

    use crate::job::expand;
    use crate::job::tests_support::{rejected, VALID};
    use crate::testing::{normalized, tokens};

    #[test]
    fn valid_job_generates_main_after_the_unchanged_function() {
        let output = expand(TokenStream::new(), tokens(VALID));
        let file: syn::File = syn::parse2(output).expect("the expansion must parse");
        assert_eq!(file.items.len(), 3);

        let Item::Fn(job_fn) = &file.items[0] else {
            panic!("the job function must come first");
        };
        let original: ItemFn = syn::parse2(tokens(VALID)).expect("valid input");
        assert_eq!(job_fn, &original);

        let Item::Fn(main) = &file.items[1] else {
            panic!("the expansion must define `main`");
        };
        assert_eq!(main.sig.ident, "main");
        assert_eq!(
            normalized(&main.attrs[0]),
            normalized(quote!(#[cfg(not(test))]))
        );
        assert_eq!(
            normalized(&main.sig.output),
            normalized(quote!(-> ::std::process::ExitCode))
        );
        // A string, not `quote!`: rustfmt would drop the empty turbofish.
        let expected_body: syn::Block = syn::parse_str(
            r#"{
                ::flow_core::__private::job_main::<WordCountArgs, _>(
                    ::flow_core::__private::JobInfo { name: "word_count", about: "Counts words." },
                    word_count::<>,
                )
            }"#,
        )
        .expect("valid block");
        assert_eq!(normalized(&main.block), normalized(expected_body));

        let expected_use: Item = syn::parse_quote! {
            #[cfg(test)]
            const _: () = {
                let _ = word_count;
            };
        };
        assert_eq!(file.items[2], expected_use);
    }

    #[test]
    fn named_main_gets_no_stub() {
        let item = "fn main(env: &mut Env, args: A) -> flow_core::Result<()> { Ok(()) }";
        let (rejection, errors) = rejected("", item);
        assert_eq!(
            errors,
            [(
                "a stream job cannot be named `main`: `#[stream_job]` generates `main` itself; \
                 give the function the job's name instead"
                    .into(),
                "main".into()
            )]
        );
        assert!(!rejection.stub_main);

        let output = expand(TokenStream::new(), tokens(item));
        let file: syn::File = syn::parse2(output).expect("the expansion must parse");
        let mains = file
            .items
            .iter()
            .filter(|item| matches!(item, Item::Fn(f) if f.sig.ident == "main"))
            .count();
        assert_eq!(mains, 1, "only the user's own function may be named `main`");
    }

    #[test]
    fn invalid_job_keeps_the_function_and_adds_errors_and_a_stub_main() {
        let item = "async fn job(env: &mut Env, args: A) -> R { todo!() }";
        let output = expand(tokens("bogus"), tokens(item));
        let file: syn::File = syn::parse2(output).expect("the expansion must parse");
        assert_eq!(file.items.len(), 4, "fn, two compile_error!s, stub main");

        let original: ItemFn = syn::parse2(tokens(item)).expect("valid input");
        assert!(matches!(&file.items[0], Item::Fn(f) if *f == original));
        for error in &file.items[1..3] {
            let Item::Macro(error) = error else {
                panic!("expected `compile_error!`, found {}", normalized(error));
            };
            assert_eq!(
                normalized(&error.mac.path),
                normalized(quote!(::core::compile_error))
            );
        }
        let Item::Fn(stub) = &file.items[3] else {
            panic!("the expansion must end with a stub `main`");
        };
        let expected: ItemFn = syn::parse2(quote! {
            #[cfg(not(test))]
            fn main() -> ::std::process::ExitCode {
                ::std::process::ExitCode::FAILURE
            }
        })
        .expect("valid stub");
        assert_eq!(stub, &expected);
    }
}
