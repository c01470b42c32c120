//! `#[stream_job]`: parse the attribute and the function, check them into a
//! [`Job`], and generate the binary's `main`.
//!
//! Everything here works on `proc_macro2` tokens so the unit tests below can
//! drive it without a compiler.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Meta, Pat, PatIdent, Path,
    ReturnType, Signature, Token, Type, TypePath,
};

use crate::ctxt::Ctxt;
use crate::syntax::{not_a_function, path_to_string, peel, span_range};

/// What a stream job's signature must look like, for the error messages.
const EXPECTED_SIGNATURE: &str =
    "`fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>`";

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
    let attrs = JobAttrs::parse(&mut cx, attr);

    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            cx.syn_error(not_a_function("stream_job", item, error));
            return cx.finish(None).map_err(|errors| Rejection {
                errors,
                stub_main: false,
            });
        }
    };

    let checked = check_signature(&mut cx, &func.sig);
    let stub_main = func.sig.ident.unraw() != "main";
    let job = checked.map(|(args_ty, output)| Job {
        name: match attrs.name {
            Some(name) => name.value(),
            None => func.sig.ident.unraw().to_string(),
        },
        about: match attrs.about {
            Some(about) => about.value(),
            None => doc_text(&func.attrs),
        },
        ident: func.sig.ident.clone(),
        args_ty: args_ty.clone(),
        output: output.clone(),
    });
    cx.finish(job)
        .map_err(|errors| Rejection { errors, stub_main })
}

// ---------------------------------------------------------------------------
// Attribute arguments
// ---------------------------------------------------------------------------

/// A known attribute argument key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Name,
    About,
}

impl Key {
    /// The key `path` names, if it is a known one.
    fn of(path: &Path) -> Option<Self> {
        if path.is_ident("name") {
            Some(Self::Name)
        } else if path.is_ident("about") {
            Some(Self::About)
        } else {
            None
        }
    }

    /// The key as written.
    fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::About => "about",
        }
    }

    /// An example value, for the error messages.
    fn example(self) -> &'static str {
        match self {
            Self::Name => "word_count",
            Self::About => "Counts words.",
        }
    }
}

/// The attribute's arguments: `#[stream_job(name = "...", about = "...")]`.
#[derive(Default)]
struct JobAttrs {
    name: Option<LitStr>,
    about: Option<LitStr>,
}

impl JobAttrs {
    /// Parses the arguments, recording every malformed, unknown or duplicate
    /// one in `cx` and keeping the valid ones.
    fn parse(cx: &mut Ctxt, attr: TokenStream) -> Self {
        let mut attrs = Self::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
            Ok(metas) => metas,
            Err(error) => {
                cx.syn_error(error);
                return attrs;
            }
        };

        let mut seen = Vec::new();
        for meta in &metas {
            let path = meta.path();
            let Some(key) = Key::of(path) else {
                cx.error_spanned_by(
                    path,
                    format_args!(
                        "unknown stream_job attribute `{}`; expected `name` or `about`",
                        path_to_string(path)
                    ),
                );
                continue;
            };
            if seen.contains(&key) {
                cx.error_spanned_by(
                    path,
                    format_args!("duplicate stream_job attribute `{}`", key.as_str()),
                );
                continue;
            }
            seen.push(key);

            if let Some(value) = string_value(cx, key, meta) {
                match key {
                    Key::Name => attrs.name = Some(value),
                    Key::About => attrs.about = Some(value),
                }
            }
        }
        attrs
    }
}

/// The string literal value of `key = "..."`, or `None` after recording why
/// `meta` is not one.
fn string_value(cx: &mut Ctxt, key: Key, meta: &Meta) -> Option<LitStr> {
    let (text, example) = (key.as_str(), key.example());
    let Meta::NameValue(name_value) = meta else {
        cx.error_spanned_by(
            meta,
            format_args!("expected `{text} = \"...\"`, e.g. `{text} = \"{example}\"`"),
        );
        return None;
    };
    match &name_value.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(value),
            attrs,
        }) if attrs.is_empty() => {
            if key == Key::Name && value.value().trim().is_empty() {
                cx.error_spanned_by(value, "the stream job's `name` must not be empty");
                return None;
            }
            Some(value.clone())
        }
        other => {
            cx.error_spanned_by(
                other,
                format_args!("`{text}` must be a string literal, e.g. `{text} = \"{example}\"`"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// The annotated item
// ---------------------------------------------------------------------------

/// Checks the function's signature, recording every problem in `cx`.
///
/// Returns the job's arguments type and its return type when both could be
/// found; other problems are only recorded.
fn check_signature<'a>(cx: &mut Ctxt, sig: &'a Signature) -> Option<(&'a Type, &'a Type)> {
    if let Some(token) = &sig.constness {
        cx.error_spanned_by(token, "a stream job cannot be `const`");
    }
    if let Some(token) = &sig.asyncness {
        cx.error_spanned_by(
            token,
            "a stream job cannot be `async`: it builds its dataflow synchronously \
             and the runtime then runs it",
        );
    }
    if let Some(token) = &sig.unsafety {
        cx.error_spanned_by(token, "a stream job cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a stream job cannot be `extern`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "a stream job cannot have generic parameters");
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(where_clause, "a stream job cannot have a `where` clause");
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a stream job cannot be variadic");
    }
    if sig.ident.unraw() == "main" {
        cx.error_spanned_by(
            &sig.ident,
            "a stream job cannot be named `main`: `#[stream_job]` generates `main` itself; \
             give the function the job's name instead",
        );
    }

    let args_ty = check_params(cx, sig);
    let output = match &sig.output {
        ReturnType::Type(_, output) => Some(&**output),
        ReturnType::Default => {
            cx.error_at(
                sig.paren_token.span.close(),
                "a stream job returns `flow_core::Result<()>`; \
                 add `-> flow_core::Result<()>` after the parameters",
            );
            None
        }
    };
    Some((args_ty?, output?))
}

/// Checks the parameters: `&mut Env`, then the job's arguments, nothing
/// else. Returns the arguments' type when it is acceptable.
fn check_params<'a>(cx: &mut Ctxt, sig: &'a Signature) -> Option<&'a Type> {
    for input in &sig.inputs {
        if let FnArg::Receiver(receiver) = input {
            cx.error_spanned_by(
                receiver,
                "a stream job is a free function and cannot take `self`",
            );
        }
    }

    let mut inputs = sig.inputs.iter();
    let (env, args) = (inputs.next(), inputs.next());
    let extra: Vec<&FnArg> = inputs.collect();

    match env {
        None => {
            cx.error_at(
                sig.paren_token.span.join(),
                format_args!(
                    "a stream job takes two parameters, `env: &mut Env` and the job's arguments, \
                     a struct deriving `Args`: {EXPECTED_SIGNATURE} \
                     with `#[derive(Args)] struct MyArgs {{}}`"
                ),
            );
            return None;
        }
        Some(FnArg::Typed(env)) if !is_mut_env(&env.ty) => {
            cx.error_spanned_by(
                &env.ty,
                "the first parameter of a stream job must be `&mut Env`",
            );
        }
        Some(_) => {}
    }

    if !extra.is_empty() {
        cx.error_spanned_by(
            quote!(#(#extra),*),
            format_args!(
                "a stream job takes exactly two parameters, `env: &mut Env` and the job's \
                 arguments: {EXPECTED_SIGNATURE}"
            ),
        );
    }

    let args = match args {
        Some(FnArg::Typed(args)) => args,
        // A receiver is reported above.
        Some(FnArg::Receiver(_)) => return None,
        None => {
            cx.error_at(
                sig.paren_token.span.join(),
                format_args!(
                    "missing the job's arguments: a stream job's second parameter is a struct \
                     deriving `Args`, e.g. {EXPECTED_SIGNATURE} \
                     with `#[derive(Args)] struct MyArgs {{}}`"
                ),
            );
            return None;
        }
    };

    match &*args.pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ..
        })
        | Pat::Wild(_) => {}
        pattern => cx.error_spanned_by(
            pattern,
            "bind the job's arguments to a plain identifier, e.g. `args: MyArgs`",
        ),
    }

    match peel(&args.ty) {
        Type::Path(TypePath { qself: None, .. }) => Some(&args.ty),
        ty => {
            cx.error_spanned_by(
                ty,
                "the job's arguments must be a struct deriving `Args`, e.g. `args: MyArgs` \
                 with `#[derive(Args)] struct MyArgs {}`",
            );
            None
        }
    }
}

/// Whether `ty` is `&mut Env`, `&mut flow_core::Env` or the like: a mutable
/// reference to a path whose last segment is `Env`.
fn is_mut_env(ty: &Type) -> bool {
    let Type::Reference(reference) = peel(ty) else {
        return false;
    };
    reference.mutability.is_some()
        && matches!(
            peel(&reference.elem),
            Type::Path(TypePath { qself: None, path })
                if path.segments.last().is_some_and(|segment| segment.ident == "Env")
        )
}

/// The doc comments in `attrs`: each line trimmed, joined with `'\n'`, with
/// leading and trailing blank lines dropped. `#[doc = ...]` attributes whose
/// value is not a string literal (e.g. `include_str!`) are skipped.
fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(syn::MetaNameValue {
            value: Expr::Lit(ExprLit {
                lit: Lit::Str(doc), ..
            }),
            ..
        }) = &attr.meta
        {
            lines.extend(doc.value().split('\n').map(|line| line.trim().to_owned()));
        }
    }
    let start = lines.iter().position(|line| !line.is_empty());
    let end = lines.iter().rposition(|line| !line.is_empty());
    match (start, end) {
        (Some(start), Some(end)) => lines[start..=end].join("\n"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Code generation
// ---------------------------------------------------------------------------

impl Job {
    /// The function unchanged, plus a `main` that runs it (and, for test
    /// builds, which have no such `main`, a use of the function).
    fn generate(&self, item: TokenStream) -> TokenStream {
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
    fn into_tokens(self, item: TokenStream) -> TokenStream {
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
    use super::*;
    use quote::ToTokens;
    use syn::Item;

    /// Parses Rust source into tokens carrying real source locations.
    fn tokens(source: &str) -> TokenStream {
        source.parse().expect("test input must tokenize")
    }

    /// Runs the analysis expecting success.
    fn accepted(attr: &str, item: &str) -> Job {
        match analyze(tokens(attr), tokens(item)) {
            Ok(job) => job,
            Err(rejection) => panic!("unexpected errors: {}", rejection.errors),
        }
    }

    /// Runs the analysis expecting failure: the rejection, and each error's
    /// message with the source text it is spanned on.
    fn rejected(attr: &str, item: &str) -> (Rejection, Vec<(String, String)>) {
        let Err(rejection) = analyze(tokens(attr), tokens(item)) else {
            panic!("expected errors for `{item}`");
        };
        let errors = rejection
            .errors
            .clone()
            .into_iter()
            .map(|error| {
                let text = error.span().source_text().unwrap_or_default();
                (error.to_string(), text)
            })
            .collect();
        (rejection, errors)
    }

    /// The single error for `item`: its message and the source text it is
    /// spanned on.
    fn single_error(attr: &str, item: &str) -> (String, String) {
        let (_, mut errors) = rejected(attr, item);
        assert_eq!(errors.len(), 1, "expected exactly one error: {errors:#?}");
        errors.remove(0)
    }

    const VALID: &str = "
        /// Counts words.
        fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> { Ok(()) }
    ";

    /// Normalizes token spacing so generated code can be compared to source.
    fn normalized(tokens: impl ToTokens) -> String {
        tokens.to_token_stream().to_string()
    }

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
    fn attribute_arguments_override_the_defaults() {
        let job = accepted(r#"name = "wc", about = "Counts\nwords.""#, VALID);
        assert_eq!(job.name, "wc");
        assert_eq!(job.about, "Counts\nwords.");

        let job = accepted(r#"about = "", "#, VALID);
        assert_eq!(job.name, "word_count");
        assert_eq!(job.about, "");
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
    fn doc_lines_are_trimmed_and_joined() {
        let job = accepted(
            "",
            "
            ///
            ///   Counts words.
            ///
            ///   Splits lines on whitespace.  
            #[doc = \" More. \"]
            /** Block
                comment. */
            #[doc = include_str!(\"ignored.md\")]
            #[inline]
            ///
            fn word_count(env: &mut Env, args: A) -> flow_core::Result<()> { Ok(()) }
            ",
        );
        assert_eq!(
            job.about,
            "Counts words.\n\nSplits lines on whitespace.\nMore.\nBlock\ncomment."
        );
    }

    #[test]
    fn undocumented_job_has_empty_about() {
        let job = accepted(
            "",
            "fn job(env: &mut Env, args: A) -> flow_core::Result<()> { Ok(()) }",
        );
        assert_eq!(job.about, "");
    }

    #[test]
    fn accepted_parameter_forms() {
        for item in [
            "fn job(env: &mut flow_core::Env, args: A) -> R {}",
            "fn job(_: &'static mut ::flow_core::Env, _: A) -> R {}",
            "fn job(mut env: &mut Env, mut args: cli::A) -> R {}",
            "pub(crate) fn job(env: &mut (Env), args: Wrapper<A>,) -> R {}",
        ] {
            accepted("", item);
        }
    }

    #[test]
    fn unknown_attribute() {
        let (message, span) = single_error(r#"foo = "x""#, VALID);
        assert_eq!(
            message,
            "unknown stream_job attribute `foo`; expected `name` or `about`"
        );
        assert_eq!(span, "foo");

        let (message, span) = single_error("crate::name", VALID);
        assert_eq!(
            message,
            "unknown stream_job attribute `crate::name`; expected `name` or `about`"
        );
        assert_eq!(span, "crate::name");
    }

    #[test]
    fn duplicate_attribute_is_reported_on_the_second() {
        let attr = r#"name = "a", about = "b", name = "c""#;
        let (rejection, errors) = rejected(attr, VALID);
        assert_eq!(
            errors,
            [(
                "duplicate stream_job attribute `name`".into(),
                "name".into()
            )]
        );
        let second = attr.rfind("name").expect("two `name`s");
        assert_eq!(rejection.errors.span().byte_range(), second..second + 4);
    }

    #[test]
    fn non_string_values() {
        let (message, span) = single_error("name = 42", VALID);
        assert_eq!(
            message,
            "`name` must be a string literal, e.g. `name = \"word_count\"`"
        );
        assert_eq!(span, "42");

        let (message, span) = single_error("about = concat!(\"a\", \"b\")", VALID);
        assert_eq!(
            message,
            "`about` must be a string literal, e.g. `about = \"Counts words.\"`"
        );
        assert_eq!(span, "concat!(\"a\", \"b\")");

        let (message, span) = single_error("name", VALID);
        assert_eq!(
            message,
            "expected `name = \"...\"`, e.g. `name = \"word_count\"`"
        );
        assert_eq!(span, "name");

        let (message, span) = single_error(r#"name = " ""#, VALID);
        assert_eq!(message, "the stream job's `name` must not be empty");
        assert_eq!(span, r#"" ""#);
    }

    #[test]
    fn malformed_attribute_arguments() {
        let (message, span) = single_error("42", VALID);
        assert_eq!(message, "expected identifier");
        assert_eq!(span, "42");
    }

    #[test]
    fn signature_qualifiers() {
        let cases = [
            ("const", "a stream job cannot be `const`"),
            (
                "async",
                "a stream job cannot be `async`: it builds its dataflow synchronously \
                 and the runtime then runs it",
            ),
            ("unsafe", "a stream job cannot be `unsafe`"),
            ("extern \"C\"", "a stream job cannot be `extern`"),
        ];
        for (qualifier, expected) in cases {
            let item = format!(
                "{qualifier} fn job(env: &mut Env, args: A) -> flow_core::Result<()> {{ Ok(()) }}"
            );
            let (message, span) = single_error("", &item);
            assert_eq!(message, expected);
            assert_eq!(span, qualifier);
        }
    }

    #[test]
    fn generics() {
        let (message, span) = single_error(
            "",
            "fn job<T: Clone, const N: usize>(env: &mut Env, args: A) -> R { todo!() }",
        );
        assert_eq!(message, "a stream job cannot have generic parameters");
        assert_eq!(span, "<T: Clone, const N: usize>");

        let (message, span) = single_error(
            "",
            "fn job(env: &mut Env, args: A) -> R where A: Clone { todo!() }",
        );
        assert_eq!(message, "a stream job cannot have a `where` clause");
        assert_eq!(span, "where A: Clone");
    }

    #[test]
    fn variadic() {
        let (_, errors) = rejected("", "fn job(env: &mut Env, args: A, ...) -> R { todo!() }");
        assert!(errors.contains(&("a stream job cannot be variadic".into(), "...".into())));
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
    fn wrong_first_param() {
        for (params, ty) in [
            ("env: &Env, args: A", "&Env"),
            ("env: Env, args: A", "Env"),
            ("env: &mut Environment, args: A", "&mut Environment"),
            ("env: &mut Env<T>::Inner, args: A", "&mut Env<T>::Inner"),
        ] {
            let item = format!("fn job({params}) -> R {{ todo!() }}");
            let (message, span) = single_error("", &item);
            assert_eq!(
                message, "the first parameter of a stream job must be `&mut Env`",
                "{params}"
            );
            assert_eq!(span, ty);
        }
    }

    #[test]
    fn missing_params() {
        let (message, span) = single_error("", "fn job() -> R { todo!() }");
        assert_eq!(
            message,
            "a stream job takes two parameters, `env: &mut Env` and the job's arguments, \
             a struct deriving `Args`: \
             `fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>` \
             with `#[derive(Args)] struct MyArgs {}`"
        );
        assert_eq!(span, "()");

        let (message, span) = single_error("", "fn job(env: &mut Env) -> R { todo!() }");
        assert_eq!(
            message,
            "missing the job's arguments: a stream job's second parameter is a struct \
             deriving `Args`, e.g. \
             `fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>` \
             with `#[derive(Args)] struct MyArgs {}`"
        );
        assert_eq!(span, "(env: &mut Env)");
    }

    #[test]
    fn too_many_params() {
        let (message, span) = single_error(
            "",
            "fn job(env: &mut Env, args: A, extra: u32, more: u64) -> R { todo!() }",
        );
        assert_eq!(
            message,
            "a stream job takes exactly two parameters, `env: &mut Env` and the job's \
             arguments: `fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>`"
        );
        assert_eq!(span, "extra: u32, more: u64");
    }

    #[test]
    fn self_receiver() {
        let (_, errors) = rejected("", "fn job(&mut self, args: A) -> R { todo!() }");
        assert_eq!(
            errors,
            [(
                "a stream job is a free function and cannot take `self`".into(),
                "&mut self".into()
            )]
        );
    }

    #[test]
    fn args_param_shape() {
        let (message, span) = single_error(
            "",
            "fn job(env: &mut Env, MyArgs { n }: MyArgs) -> R { todo!() }",
        );
        assert_eq!(
            message,
            "bind the job's arguments to a plain identifier, e.g. `args: MyArgs`"
        );
        assert_eq!(span, "MyArgs { n }");

        for (ty, shown) in [
            ("&MyArgs", "&MyArgs"),
            ("(A, B)", "(A, B)"),
            ("<T as Tr>::A", "<T as Tr>::A"),
            ("impl Args", "impl Args"),
        ] {
            let item = format!("fn job(env: &mut Env, args: {ty}) -> R {{ todo!() }}");
            let (message, span) = single_error("", &item);
            assert_eq!(
                message,
                "the job's arguments must be a struct deriving `Args`, e.g. `args: MyArgs` \
                 with `#[derive(Args)] struct MyArgs {}`"
            );
            assert_eq!(span, shown);
        }
    }

    #[test]
    fn missing_return_type() {
        let (message, span) = single_error("", "fn job(env: &mut Env, args: A) {}");
        assert_eq!(
            message,
            "a stream job returns `flow_core::Result<()>`; \
             add `-> flow_core::Result<()>` after the parameters"
        );
        assert_eq!(span, ")");
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

    #[test]
    fn not_a_function() {
        let item = "#[derive(Args)] pub struct MyArgs { n: u64 }";
        let (rejection, errors) = rejected("", item);
        assert_eq!(
            errors,
            [(
                "`#[stream_job]` can only be applied to a function".into(),
                "struct".into()
            )]
        );
        assert!(!rejection.stub_main);

        let output = expand(TokenStream::new(), tokens(item));
        let file: syn::File = syn::parse2(output).expect("the expansion must parse");
        assert_eq!(file.items.len(), 2, "the struct and the compile_error!");
        assert_eq!(normalized(&file.items[0]), normalized(tokens(item)));

        let (message, span) = single_error("", "impl Job for X {}");
        assert_eq!(message, "`#[stream_job]` can only be applied to a function");
        assert_eq!(span, "impl");
    }

    #[test]
    fn function_without_body_keeps_the_parse_error() {
        let (message, _) = single_error("", "fn job(env: &mut Env, args: A) -> R;");
        assert_eq!(message, "expected curly braces");
    }
}
