//! Checking a stream job's signature: `fn(&mut Env, Args) -> Result<()>`.

use quote::quote;
use syn::{FnArg, Pat, PatIdent, ReturnType, Signature, Type, TypePath};

use crate::ctxt::Ctxt;
use crate::sig::{self, FnRole};
use crate::syntax::peel;

/// How the errors speak of a stream job.
const ROLE: FnRole = FnRole {
    what: "a stream job",
    why_not_async: "it builds its dataflow synchronously and the runtime then runs it",
};

/// What a stream job's signature must look like, for the error messages.
const EXPECTED_SIGNATURE: &str =
    "`fn my_job(env: &mut Env, args: MyArgs) -> flow_core::Result<()>`";

/// Checks the function's signature, recording every problem in `cx`.
///
/// Returns the job's arguments type and its return type when both could be
/// found; other problems are only recorded.
pub(super) fn check_signature<'a>(
    cx: &mut Ctxt,
    sig: &'a Signature,
) -> Option<(&'a Type, &'a Type)> {
    sig::check_plain(cx, sig, &ROLE);
    sig::check_not_main(
        cx,
        sig,
        &ROLE,
        "`#[stream_job]` generates `main` itself; give the function the job's name instead",
    );

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
    sig::check_no_receiver(cx, sig, &ROLE);

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

#[cfg(test)]
mod tests {
    use crate::job::tests_support::{accepted, rejected, single_error};

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
}
