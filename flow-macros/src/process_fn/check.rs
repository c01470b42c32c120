//! Checking a process function's signature: its qualifiers, parameters
//! (key, record, keyed state, context) and the types in them, its return
//! type, and the generated struct's name.

use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::visit::{self, Visit};
use syn::{
    BoundLifetimes, FnArg, GenericArgument, Ident, Lifetime, Pat, PatIdent, PatType, Path,
    PathArguments, ReturnType, Signature, Type, TypePath, TypeReference,
};

use super::parse::{is_context_like, path_segment, state_kind, ProcessAttrs};
use super::{StateKind, StateParam};
use crate::ctxt::Ctxt;
use crate::sig::{self, FnRole};
use crate::syntax::{path_to_string, peel};

/// How the errors speak of a process function.
const ROLE: FnRole = FnRole {
    what: "a process function",
    why_not_async: "it runs to completion on each record and timer",
};

/// What a process function's signature must look like, for the error
/// messages.
const EXPECTED_SIGNATURE: &str = "`fn my_fn(key: &Key, item: Record, \
     count: &mut ValueState<u64>, ctx: &mut Context<'_, Out>)`";

/// The kinds of keyed state parameters, for the error messages.
const STATE_KINDS: &str = "`&mut ValueState<T>`, `&mut ListState<T>` or `&mut MapState<K, V>`";

/// Checks the function's qualifiers, generics and variadic arguments.
pub(super) fn check_qualifiers(cx: &mut Ctxt, sig: &Signature) {
    sig::check_plain(cx, sig, &ROLE);
}

/// Checks that the function returns nothing.
pub(super) fn check_output(cx: &mut Ctxt, sig: &Signature) {
    if let ReturnType::Type(_, output) = &sig.output {
        if !matches!(peel(output), Type::Tuple(unit) if unit.elems.is_empty()) {
            cx.error_spanned_by(
                output,
                "a process function returns nothing: it emits its output through its context, \
                 with `ctx.emit(..)`",
            );
        }
    }
}

/// The generated struct's name: `name = ...`, or the function's name in
/// UpperCamelCase. `None` when it cannot be determined, after recording why
/// (unless the `name` argument's own error was recorded already).
pub(super) fn struct_name(cx: &mut Ctxt, attrs: &ProcessAttrs, sig: &Signature) -> Option<Ident> {
    if attrs.bad_name {
        return None;
    }
    let function = sig.ident.unraw();
    let name = match &attrs.name {
        Some(name) => name.clone(),
        None => {
            let camel = upper_camel_case(&function.to_string());
            match syn::parse_str::<Ident>(&camel) {
                Ok(mut name) => {
                    name.set_span(sig.ident.span());
                    name
                }
                Err(_) => {
                    cx.error_spanned_by(
                        &sig.ident,
                        format_args!(
                            "cannot name the process function's struct after `{function}`; \
                             name it with `#[process_fn(name = MyFunction)]`"
                        ),
                    );
                    return None;
                }
            }
        }
    };
    if name.unraw() == function {
        let message = format!(
            "the process function's struct cannot have the function's own name `{function}`; \
             name it with `#[process_fn(name = MyFunction)]`"
        );
        match &attrs.name {
            Some(given) => cx.error_spanned_by(given, message),
            None => cx.error_spanned_by(&sig.ident, message),
        }
        return None;
    }
    Some(name)
}

/// `snake_case` to `UpperCamelCase`: each `_`-separated part capitalized,
/// the underscores dropped.
fn upper_camel_case(snake: &str) -> String {
    let mut camel = String::with_capacity(snake.len());
    for part in snake.split('_') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            camel.extend(first.to_uppercase());
            camel.push_str(chars.as_str());
        }
    }
    camel
}

/// What the parameters yielded: each part is `None` when it is missing or
/// invalid (and the problem recorded).
pub(super) struct Params<'a> {
    /// `K` of the key parameter `&K`.
    pub(super) key: Option<&'a Type>,
    /// The record's type.
    pub(super) record: Option<&'a Type>,
    /// The valid keyed state parameters.
    pub(super) states: Vec<StateParam>,
    /// `O` of the context parameter `&mut Context<'_, O>`.
    pub(super) out: Option<&'a Type>,
}

/// Checks the parameters: the configuration `&C` (with `config = C` only),
/// `&K`, the record, keyed state, then the context.
pub(super) fn check_params<'a>(
    cx: &mut Ctxt,
    attrs: &ProcessAttrs,
    sig: &'a Signature,
) -> Params<'a> {
    sig::check_no_receiver(cx, sig, &ROLE);
    let all: Vec<&PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(param) => Some(param),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let params = split_config(cx, attrs, sig, &all);

    let mut checked = Params {
        key: params.first().and_then(|key| check_key(cx, key)),
        record: None,
        states: Vec::new(),
        out: None,
    };
    let [_, record, rest @ ..] = params else {
        return too_few_params(cx, sig, checked);
    };
    if rest.is_empty() {
        return too_few_params(cx, sig, checked);
    }
    checked.record = check_record(cx, record);

    // The context is the last parameter; one anywhere else is misplaced.
    let (states, context) = match rest.split_last() {
        Some((last, states)) if is_context_like(&last.ty) => (states, Some(*last)),
        _ => (rest, None),
    };
    let mut context = context;
    let mut state_params = Vec::new();
    for param in states {
        if is_context_like(&param.ty) {
            cx.error_spanned_by(
                param,
                "the context must be the last parameter of a process function",
            );
            context = context.or(Some(*param));
        } else {
            state_params.push(*param);
        }
    }
    match context {
        Some(context) => checked.out = check_context(cx, context),
        None => cx.error_at(
            sig.paren_token.span.close(),
            "missing the context: the last parameter of a process function must be \
             `ctx: &mut Context<'_, Out>`, with `Out` the type of the records it emits",
        ),
    }

    let states: Vec<StateParam> = state_params
        .into_iter()
        .filter_map(|param| check_state(cx, param))
        .collect();
    checked.states = states;
    checked
}

/// Checks the configuration parameter against the attribute's `config`, and
/// returns the parameters after it.
///
/// With `config = C`, the first parameter must be `cfg: &C` (any pattern, the
/// type written as in the attribute). It is taken for the configuration
/// parameter when its type names `C` (behind references or not), or when the
/// parameters after it have the shape of a process function's (a key by
/// reference, a record, and no keyed state or context where the record
/// should be): its type is then the wrong one. Otherwise it is missing.
/// Without `config`, a first parameter followed by that shape is a
/// configuration parameter without the attribute.
fn split_config<'p, 'a>(
    cx: &mut Ctxt,
    attrs: &ProcessAttrs,
    sig: &Signature,
    params: &'p [&'a PatType],
) -> &'p [&'a PatType] {
    let Some((first, rest)) = params.split_first() else {
        if let Some(config) = &attrs.config {
            missing_config(cx, config, sig);
        }
        return params;
    };
    let shifted = rest.len() >= 3
        && !is_context_like(&first.ty)
        && state_kind(&first.ty).is_none()
        && matches!(peel(&rest[0].ty), Type::Reference(_))
        && !is_context_like(&rest[0].ty)
        && state_kind(&rest[0].ty).is_none()
        && !is_context_like(&rest[1].ty)
        && state_kind(&rest[1].ty).is_none();
    match &attrs.config {
        Some(config) if shifted || names_type(&first.ty, config) => {
            check_config(cx, config, first);
            rest
        }
        Some(config) => {
            missing_config(cx, config, sig);
            params
        }
        None if attrs.bad_config => {
            if shifted {
                rest
            } else {
                params
            }
        }
        None => match peel(&first.ty) {
            Type::Reference(TypeReference {
                mutability: None,
                elem,
                ..
            }) if shifted => {
                let ty = match peel(elem) {
                    Type::Path(TypePath { qself: None, path }) => path_to_string(path),
                    _ => "MyConfig".to_owned(),
                };
                cx.error_spanned_by(
                    first,
                    format_args!(
                        "a process function takes a configuration parameter only with \
                         `#[process_fn(config = {ty})]`; add it, or remove this parameter: \
                         the first parameter is otherwise the key"
                    ),
                );
                rest
            }
            _ => params,
        },
    }
}

/// Whether `ty` names the type `config`, behind references or not.
fn names_type(mut ty: &Type, config: &Path) -> bool {
    loop {
        match peel(ty) {
            Type::Reference(reference) => ty = &reference.elem,
            ty => return is_type(ty, config),
        }
    }
}

/// Whether `ty` is the type `config`, written the same way.
fn is_type(ty: &Type, config: &Path) -> bool {
    match peel(ty) {
        Type::Path(TypePath { qself: None, path }) => {
            path.to_token_stream().to_string() == config.to_token_stream().to_string()
        }
        _ => false,
    }
}

/// Checks the configuration parameter: `cfg: &C`, with `C` the type of
/// `config = C`.
fn check_config(cx: &mut Ctxt, config: &Path, param: &PatType) {
    let name = path_to_string(config);
    match peel(&param.ty) {
        Type::Reference(reference) if is_type(&reference.elem, config) => {
            check_borrow(cx, reference.lifetime.as_ref(), "configuration");
            if let Some(mutability) = &reference.mutability {
                let and = reference.and_token;
                cx.error_spanned_by(
                    quote!(#and #mutability),
                    format_args!(
                        "a process function takes its configuration by shared reference, \
                         `cfg: &{name}`, not `&mut`: it is shared by every key"
                    ),
                );
            }
        }
        ty => cx.error_spanned_by(
            ty,
            format_args!(
                "with `config = {name}`, a process function's first parameter is its \
                 configuration, by shared reference: `cfg: &{name}`"
            ),
        ),
    }
}

/// Records that `config = C` was given but the function takes no `cfg: &C`.
fn missing_config(cx: &mut Ctxt, config: &Path, sig: &Signature) {
    let name = path_to_string(config);
    cx.error_at(
        sig.paren_token.span.open(),
        format_args!(
            "missing the configuration: with `config = {name}`, the first parameter of a \
             process function must be `cfg: &{name}`, before the key"
        ),
    );
}

/// Records that there are not enough parameters.
fn too_few_params<'a>(cx: &mut Ctxt, sig: &Signature, checked: Params<'a>) -> Params<'a> {
    cx.error_at(
        sig.paren_token.span.join(),
        format_args!(
            "a process function takes its key, a record, its keyed state (if any) and a \
             context: {EXPECTED_SIGNATURE}"
        ),
    );
    checked
}

/// Checks the key parameter, `&K`. Returns `K` when it is a valid type, even
/// if the parameter is not a shared reference (a best guess for the stub).
fn check_key<'a>(cx: &mut Ctxt, param: &'a PatType) -> Option<&'a Type> {
    let key = match peel(&param.ty) {
        Type::Reference(reference) => {
            check_borrow(cx, reference.lifetime.as_ref(), "key");
            if let Some(mutability) = &reference.mutability {
                let and = reference.and_token;
                cx.error_spanned_by(
                    quote!(#and #mutability),
                    "a process function takes its key by shared reference, `key: &Key`, \
                     not `&mut`",
                );
            }
            &*reference.elem
        }
        ty => {
            cx.error_spanned_by(
                ty,
                "a process function's first parameter is its key, by shared reference: \
                 `key: &Key`",
            );
            &*param.ty
        }
    };
    check_type(cx, key, Role::Key).then_some(key)
}

/// Checks the record parameter: any type, but not keyed state or the context
/// (a sign the record was left out).
fn check_record<'a>(cx: &mut Ctxt, param: &'a PatType) -> Option<&'a Type> {
    if is_context_like(&param.ty) || state_kind(&param.ty).is_some() {
        cx.error_spanned_by(
            &param.ty,
            "missing the record: a process function's second parameter is the record it \
             processes, by value, e.g. `item: Record`",
        );
        return None;
    }
    check_type(cx, &param.ty, Role::Record).then_some(&*param.ty)
}

/// Checks the context parameter, `&mut Context<'_, O>`. Returns `O` when it
/// is valid.
fn check_context<'a>(cx: &mut Ctxt, param: &'a PatType) -> Option<&'a Type> {
    const EXPECTED: &str = "the context must be `ctx: &mut Context<'_, Out>`, with `Out` \
                            the type of the records the function emits";
    let reference = match peel(&param.ty) {
        Type::Reference(
            reference @ TypeReference {
                mutability: Some(_),
                ..
            },
        ) => reference,
        ty => {
            cx.error_spanned_by(
                ty,
                "take the context by mutable reference: `ctx: &mut Context<'_, Out>`",
            );
            return None;
        }
    };
    check_borrow(cx, reference.lifetime.as_ref(), "context");

    let Some(segment) = path_segment(&reference.elem) else {
        cx.error_spanned_by(&reference.elem, EXPECTED);
        return None;
    };
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        cx.error_spanned_by(&reference.elem, EXPECTED);
        return None;
    };
    let mut out = None;
    let mut lifetimes = 0;
    let mut valid = true;
    for arg in &args.args {
        match arg {
            GenericArgument::Lifetime(lifetime) if out.is_none() && lifetimes == 0 => {
                lifetimes += 1;
                check_borrow(cx, Some(lifetime), "context");
            }
            GenericArgument::Type(ty) if out.is_none() => out = Some(ty),
            _ => valid = false,
        }
    }
    match out {
        Some(out) if valid => check_type(cx, out, Role::Output).then_some(out),
        _ => {
            cx.error_spanned_by(&reference.elem, EXPECTED);
            None
        }
    }
}

/// Checks a keyed state parameter, `name: &mut ValueState<T>` and the like.
fn check_state(cx: &mut Ctxt, param: &PatType) -> Option<StateParam> {
    let ident = match &*param.pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ident,
            ..
        }) => Some(ident),
        pattern => {
            cx.error_spanned_by(
                pattern,
                "name each keyed state parameter with a plain identifier, e.g. \
                 `count: &mut ValueState<u64>`: it is the state's stable name",
            );
            None
        }
    };

    let kind = match peel(&param.ty) {
        Type::Reference(
            reference @ TypeReference {
                mutability: Some(_),
                ..
            },
        ) => path_segment(&reference.elem).and_then(|segment| {
            let kind = StateKind::of(&segment.ident)?;
            check_borrow(cx, reference.lifetime.as_ref(), "keyed state");
            Some((kind, segment))
        }),
        _ => None,
    };
    let kind = match kind {
        Some(kind) => Some(kind),
        None => {
            cx.error_spanned_by(
                &param.ty,
                format_args!(
                    "a keyed state parameter must be {STATE_KINDS}: every parameter between \
                     the record and the context is keyed state"
                ),
            );
            None
        }
    };
    let (kind, segment) = kind?;

    let args = match &segment.arguments {
        PathArguments::AngleBracketed(args)
            if args.args.len() == kind.arity()
                && args
                    .args
                    .iter()
                    .all(|arg| matches!(arg, GenericArgument::Type(_))) =>
        {
            args
        }
        _ => {
            cx.error_spanned_by(segment, kind.arity_message());
            return None;
        }
    };
    let mut clean = true;
    for arg in &args.args {
        if let GenericArgument::Type(ty) = arg {
            clean &= check_type(cx, ty, Role::State);
        }
    }
    Some(StateParam {
        ident: ident?.clone(),
        kind,
        args: args.clone(),
        ty: (*param.ty).clone(),
    })
    .filter(|_| clean)
}

/// Records a `'static` lifetime on what a process function borrows for the
/// call only: its key, its state and its context.
fn check_borrow(cx: &mut Ctxt, lifetime: Option<&Lifetime>, what: &str) {
    if let Some(lifetime) = lifetime.filter(|lifetime| lifetime.ident == "static") {
        cx.error_spanned_by(
            lifetime,
            format_args!(
                "remove `'static`: a process function borrows its {what} for one call only"
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// Lifetimes and `impl Trait` in types
// ---------------------------------------------------------------------------

/// Where a type appears, which decides the lifetimes it may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    Record,
    State,
    Output,
}

impl Role {
    /// The type's role, for the error messages.
    fn describe(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Record => "record",
            Self::State => "keyed state",
            Self::Output => "output",
        }
    }
}

/// Checks a type of the function's signature, recording the lifetimes and
/// `impl Trait`s it cannot have. Returns whether there were none.
///
/// No type may use a named lifetime other than `'static`: the function has
/// no generics to declare one, and its types outlive each call. Keys and
/// records may elide lifetimes (the generated `impl` header declares them),
/// state and output types may not (a struct field and an associated type
/// cannot).
fn check_type(cx: &mut Ctxt, ty: &Type, role: Role) -> bool {
    let mut check = TypeCheck {
        cx,
        role,
        bound: Vec::new(),
        higher_ranked: 0,
        clean: true,
    };
    check.visit_type(ty);
    check.clean
}

/// The visitor behind [`check_type`].
struct TypeCheck<'c> {
    cx: &'c mut Ctxt,
    role: Role,
    /// Lifetimes declared by enclosing `for<'a>` binders.
    bound: Vec<Ident>,
    /// How many function pointer types or `Fn(..)` bounds enclose the
    /// current type: elided lifetimes there are their own.
    higher_ranked: usize,
    /// Whether no problem was found.
    clean: bool,
}

impl TypeCheck<'_> {
    /// Records an elided lifetime where none may be; returns whether it was
    /// one.
    fn elided(&mut self, tokens: impl ToTokens) -> bool {
        if self.higher_ranked > 0 || matches!(self.role, Role::Key | Role::Record) {
            return false;
        }
        self.clean = false;
        self.cx.error_spanned_by(
            tokens,
            format_args!(
                "a process function's {} cannot borrow: it outlives each call; \
                 use a `'static` reference or an owned type, e.g. `&'static str` or `String`",
                self.role.describe()
            ),
        );
        true
    }

    /// Runs `visit` with the lifetimes of `binder` declared.
    fn with_bound(&mut self, binder: Option<&BoundLifetimes>, visit: impl FnOnce(&mut Self)) {
        let declared = self.bound.len();
        if let Some(binder) = binder {
            for param in &binder.lifetimes {
                if let syn::GenericParam::Lifetime(param) = param {
                    self.bound.push(param.lifetime.ident.clone());
                }
            }
        }
        visit(self);
        self.bound.truncate(declared);
    }
}

impl<'ast> Visit<'ast> for TypeCheck<'_> {
    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident == "static" || self.bound.contains(&lifetime.ident) {
            return;
        }
        if lifetime.ident == "_" {
            self.elided(lifetime);
            return;
        }
        self.clean = false;
        self.cx.error_spanned_by(
            lifetime,
            format_args!(
                "a process function cannot be generic over the lifetime `{lifetime}`: its {} \
                 type must be `'static`, e.g. `&'static str` or `String`",
                self.role.describe()
            ),
        );
    }

    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        // One error for the outermost elided reference is enough.
        if reference.lifetime.is_none() && self.elided(reference) {
            return;
        }
        visit::visit_type_reference(self, reference);
    }

    fn visit_type_bare_fn(&mut self, bare_fn: &'ast syn::TypeBareFn) {
        self.higher_ranked += 1;
        self.with_bound(bare_fn.lifetimes.as_ref(), |check| {
            visit::visit_type_bare_fn(check, bare_fn);
        });
        self.higher_ranked -= 1;
    }

    fn visit_parenthesized_generic_arguments(
        &mut self,
        args: &'ast syn::ParenthesizedGenericArguments,
    ) {
        self.higher_ranked += 1;
        visit::visit_parenthesized_generic_arguments(self, args);
        self.higher_ranked -= 1;
    }

    fn visit_trait_bound(&mut self, bound: &'ast syn::TraitBound) {
        self.with_bound(bound.lifetimes.as_ref(), |check| {
            visit::visit_trait_bound(check, bound);
        });
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
        self.clean = false;
        self.cx.error_spanned_by(
            impl_trait,
            "a process function cannot have generic parameters, and `impl Trait` in a \
             parameter is one: name a concrete type",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::process_fn::tests_support::{accepted, rejected, single_error, with_params};
    use crate::testing::normalized;

    #[test]
    fn struct_names() {
        for (function, name) in [
            ("detect_fraud", "DetectFraud"),
            ("count", "Count"),
            ("count_v2", "CountV2"),
            ("_private__fn_", "PrivateFn"),
            ("r#type", "Type"),
            ("already_Camel", "AlreadyCamel"),
        ] {
            let item = format!("fn {function}(k: &K, t: T, ctx: &mut Context<'_, O>) {{}}");
            assert_eq!(accepted("", &item).name, name);
        }
        let item = "fn f(k: &K, t: T, ctx: &mut Context<'_, O>) {}";
        assert_eq!(accepted("name = Custom", item).name, "Custom");
        assert_eq!(accepted("name = r#Raw", item).name, "r#Raw");
    }

    #[test]
    fn accepted_parameter_forms() {
        for params in [
            "key: &flow_core::Key, (a, b): (u8, u16), ctx: &mut Context<O>",
            "_: &&'static str, mut item: &str, ctx: &mut flow_core::process::Context<'_, O>",
            "key: &(K), item: T, mut n: &mut ::flow_core::state::ValueState<u64>, \
             m: &mut MapState<String, Vec<u8>>, l: &mut ListState<fn(&str) -> bool>, \
             ctx: &mut Context<'_, Box<dyn for<'a> Fn(&'a str) + Send>>,",
            "k: &K, t: T, ctx: &'_ mut Context<'_, &'static str>",
        ] {
            accepted("", &with_params(params));
        }
        accepted(
            "",
            "pub(crate) fn f(k: &K, t: T, ctx: &mut Context<'_, O>) -> () {}",
        );
        accepted(
            "on_timer = expire, name = Named,",
            "fn f(k: &K, t: T, ctx: &mut Context<'_, O>) {}",
        );
    }

    #[test]
    fn config_parameter_forms() {
        for (attr, params) in [
            (
                "config = Cfg",
                "cfg: &Cfg, k: &K, t: T, ctx: &mut Context<'_, O>",
            ),
            (
                "config = a::Cfg, on_timer = expire, name = N",
                "_: &a::Cfg, k: &K, t: T, s: &mut ValueState<u8>, ctx: &mut Context<'_, O>",
            ),
            (
                "config = Cfg",
                "&Cfg { interval }: &Cfg, k: &K, t: &str, ctx: &mut Context<'_, O>",
            ),
            (
                "config = Cfg",
                "cfg: &'_ (Cfg), k: &K, t: T, ctx: &mut Context<O>",
            ),
        ] {
            let process_fn = accepted(attr, &with_params(params));
            assert!(process_fn.config.is_some(), "{params}");
            assert_eq!(normalized(&process_fn.key), "K", "{params}");
        }
    }

    #[test]
    fn missing_config_parameter() {
        let expected = "missing the configuration: with `config = a::Cfg`, the first parameter \
                        of a process function must be `cfg: &a::Cfg`, before the key";
        for params in [
            "k: &K, t: T, ctx: &mut Context<'_, O>",
            "k: &K, t: &str, s: &mut ValueState<u8>, ctx: &mut Context<'_, O>",
            "k: &K, t: T, s: &mut ValueState<u8>, l: &mut ListState<u8>, ctx: &mut Context<'_, O>",
        ] {
            let (message, span) = single_error("config = a::Cfg", &with_params(params));
            assert_eq!(message, expected, "{params}");
            assert_eq!(span, "(", "{params}");
        }
    }

    #[test]
    fn config_parameter_without_attribute() {
        let (message, span) = single_error(
            "",
            &with_params("cfg: &a::Cfg, k: &K, t: T, ctx: &mut Context<'_, O>"),
        );
        assert_eq!(
            message,
            "a process function takes a configuration parameter only with \
             `#[process_fn(config = a::Cfg)]`; add it, or remove this parameter: the first \
             parameter is otherwise the key"
        );
        assert_eq!(span, "cfg: &a::Cfg");

        // A record by reference is not mistaken for a key.
        accepted(
            "",
            &with_params("k: &K, t: &str, s: &mut ValueState<u8>, ctx: &mut Context<'_, O>"),
        );
    }

    #[test]
    fn config_parameter_of_the_wrong_type() {
        let wrong = "with `config = Cfg`, a process function's first parameter is its \
                     configuration, by shared reference: `cfg: &Cfg`";
        let by_mut = "a process function takes its configuration by shared reference, \
                      `cfg: &Cfg`, not `&mut`: it is shared by every key";
        for (ty, expected, span) in [
            ("&mut Cfg", by_mut, "&mut"),
            ("Cfg", wrong, "Cfg"),
            ("&&Cfg", wrong, "&&Cfg"),
            ("&Other", wrong, "&Other"),
            ("&a::Cfg", wrong, "&a::Cfg"),
            ("u32", wrong, "u32"),
            (
                "&'static Cfg",
                "remove `'static`: a process function borrows its configuration for one call \
                 only",
                "'static",
            ),
        ] {
            let params = format!("cfg: {ty}, k: &K, t: T, ctx: &mut Context<'_, O>");
            let (message, got_span) = single_error("config = Cfg", &with_params(&params));
            assert_eq!(message, expected, "{ty}");
            assert_eq!(got_span, span, "{ty}");
        }
    }

    #[test]
    fn a_malformed_config_attribute_is_its_only_error() {
        for params in [
            "cfg: &Cfg, k: &K, t: T, ctx: &mut Context<'_, O>",
            "k: &K, t: T, ctx: &mut Context<'_, O>",
        ] {
            let (message, span) = single_error("config = 1", &with_params(params));
            assert_eq!(
                message,
                "`config` must be the path of a type, e.g. `config = DedupConfig`"
            );
            assert_eq!(span, "1");
        }
    }

    #[test]
    fn signature_qualifiers() {
        for (qualifier, expected) in [
            ("const", "a process function cannot be `const`"),
            (
                "async",
                "a process function cannot be `async`: it runs to completion on each record \
                 and timer",
            ),
            ("unsafe", "a process function cannot be `unsafe`"),
            ("extern \"C\"", "a process function cannot be `extern`"),
        ] {
            let item = format!("{qualifier} fn f(k: &K, t: T, ctx: &mut Context<'_, O>) {{}}");
            let (message, span) = single_error("", &item);
            assert_eq!(message, expected);
            assert_eq!(span, qualifier);
        }
    }

    #[test]
    fn generics() {
        let (message, span) = single_error(
            "",
            "fn f<K: Clone>(k: &u8, t: T, ctx: &mut Context<'_, O>) {}",
        );
        assert_eq!(message, "a process function cannot have generic parameters");
        assert_eq!(span, "<K: Clone>");

        let (message, span) = single_error(
            "",
            "fn f(k: &u8, t: T, ctx: &mut Context<'_, O>) where T: Clone {}",
        );
        assert_eq!(message, "a process function cannot have a `where` clause");
        assert_eq!(span, "where T: Clone");

        let (message, span) = single_error(
            "",
            "fn f(k: &u8, t: impl Into<u8>, ctx: &mut Context<'_, O>) {}",
        );
        assert_eq!(
            message,
            "a process function cannot have generic parameters, and `impl Trait` in a \
             parameter is one: name a concrete type"
        );
        assert_eq!(span, "impl Into<u8>");
    }

    #[test]
    fn named_lifetimes() {
        let (_, errors) = rejected(
            "",
            "fn f<'a>(k: &&'a str, t: Cow<'a, str>, s: &mut ValueState<&'a u8>, \
             ctx: &mut Context<'a, &'a str>) {}",
        );
        let expected = |role: &str| {
            (
                format!(
                    "a process function cannot be generic over the lifetime `'a`: its {role} \
                     type must be `'static`, e.g. `&'static str` or `String`"
                ),
                "'a".to_owned(),
            )
        };
        assert_eq!(
            errors,
            [
                (
                    "a process function cannot have generic parameters".into(),
                    "<'a>".into()
                ),
                expected("key"),
                expected("record"),
                expected("output"),
                expected("keyed state"),
            ]
        );
    }

    #[test]
    fn elided_lifetimes_in_state_and_output() {
        let (_, errors) = rejected(
            "",
            "fn f(k: &&str, t: &str, s: &mut ListState<&&u8>, m: &mut MapState<Box<dyn A + '_>, u8>, \
             ctx: &mut Context<'_, &str>) {}",
        );
        let expected = |role: &str, span: &str| {
            (
                format!(
                    "a process function's {role} cannot borrow: it outlives each call; use a \
                     `'static` reference or an owned type, e.g. `&'static str` or `String`"
                ),
                span.to_owned(),
            )
        };
        assert_eq!(
            errors,
            [
                expected("output", "&str"),
                expected("keyed state", "&&u8"),
                expected("keyed state", "'_"),
            ]
        );
    }

    #[test]
    fn static_borrows() {
        let (_, errors) = rejected(
            "",
            "fn f(k: &'static K, t: T, s: &'static mut ValueState<u8>, \
             ctx: &mut Context<'static, O>) {}",
        );
        let messages: Vec<&str> = errors.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            messages,
            [
                "remove `'static`: a process function borrows its key for one call only",
                "remove `'static`: a process function borrows its context for one call only",
                "remove `'static`: a process function borrows its keyed state for one call only",
            ]
        );
        assert!(errors.iter().all(|(_, span)| span == "'static"));
    }

    #[test]
    fn self_receiver() {
        let (_, errors) = rejected("", "fn f(&self, k: &K, t: T, ctx: &mut Context<'_, O>) {}");
        assert_eq!(
            errors,
            [(
                "a process function is a free function and cannot take `self`".into(),
                "&self".into()
            )]
        );
    }

    #[test]
    fn variadic() {
        let (_, errors) = rejected("", "fn f(k: &K, t: T, ctx: &mut Context<'_, O>, ...) {}");
        assert!(errors.contains(&("a process function cannot be variadic".into(), "...".into())));
    }

    #[test]
    fn too_few_params() {
        let expected = "a process function takes its key, a record, its keyed state (if any) \
                        and a context: `fn my_fn(key: &Key, item: Record, \
                        count: &mut ValueState<u64>, ctx: &mut Context<'_, Out>)`";
        for params in [
            "",
            "k: &K",
            "k: &K, t: T",
            "k: &K, ctx: &mut Context<'_, O>",
        ] {
            let (message, span) = single_error("", &with_params(params));
            assert_eq!(message, expected);
            assert_eq!(span, format!("({params})"));
        }
    }

    #[test]
    fn key_not_a_shared_reference() {
        let (message, span) = single_error(
            "",
            &with_params("k: String, t: T, ctx: &mut Context<'_, O>"),
        );
        assert_eq!(
            message,
            "a process function's first parameter is its key, by shared reference: `key: &Key`"
        );
        assert_eq!(span, "String");

        let (message, span) = single_error(
            "",
            &with_params("k: &mut String, t: T, ctx: &mut Context<'_, O>"),
        );
        assert_eq!(
            message,
            "a process function takes its key by shared reference, `key: &Key`, not `&mut`"
        );
        assert_eq!(span, "&mut");
    }

    #[test]
    fn missing_record() {
        let (message, span) = single_error(
            "",
            &with_params("k: &K, n: &mut ValueState<u8>, ctx: &mut Context<'_, O>"),
        );
        assert_eq!(
            message,
            "missing the record: a process function's second parameter is the record it \
             processes, by value, e.g. `item: Record`"
        );
        assert_eq!(span, "&mut ValueState<u8>");
    }

    #[test]
    fn missing_context() {
        let (message, span) = single_error("", &with_params("k: &K, t: T, n: &mut ValueState<u8>"));
        assert_eq!(
            message,
            "missing the context: the last parameter of a process function must be \
             `ctx: &mut Context<'_, Out>`, with `Out` the type of the records it emits"
        );
        assert_eq!(span, ")");
    }

    #[test]
    fn context_not_last() {
        let (message, span) = single_error(
            "",
            &with_params("k: &K, t: T, ctx: &mut Context<'_, O>, n: &mut ValueState<u8>"),
        );
        assert_eq!(
            message,
            "the context must be the last parameter of a process function"
        );
        assert_eq!(span, "ctx: &mut Context<'_, O>");
    }

    #[test]
    fn context_shape() {
        for (ty, expected) in [
            (
                "Context<'_, O>",
                "take the context by mutable reference: `ctx: &mut Context<'_, Out>`",
            ),
            (
                "&Context<'_, O>",
                "take the context by mutable reference: `ctx: &mut Context<'_, Out>`",
            ),
            (
                "&mut Context",
                "the context must be `ctx: &mut Context<'_, Out>`, with `Out` the type of \
                 the records the function emits",
            ),
            (
                "&mut Context<'_>",
                "the context must be `ctx: &mut Context<'_, Out>`, with `Out` the type of \
                 the records the function emits",
            ),
            (
                "&mut Context<'_, A, B>",
                "the context must be `ctx: &mut Context<'_, Out>`, with `Out` the type of \
                 the records the function emits",
            ),
        ] {
            let (message, span) = single_error("", &with_params(&format!("k: &K, t: T, c: {ty}")));
            assert_eq!(message, expected, "{ty}");
            let shown = ty.strip_prefix("&mut ").unwrap_or(ty);
            assert_eq!(span, shown, "{ty}");
        }
    }

    #[test]
    fn state_kinds() {
        let expected = "a keyed state parameter must be `&mut ValueState<T>`, \
                        `&mut ListState<T>` or `&mut MapState<K, V>`: every parameter between \
                        the record and the context is keyed state";
        for ty in ["&mut Vec<u32>", "&ValueState<u32>", "ListState<u32>", "u8"] {
            let params = format!("k: &K, t: T, s: {ty}, ctx: &mut Context<'_, O>");
            let (message, span) = single_error("", &with_params(&params));
            assert_eq!(message, expected, "{ty}");
            assert_eq!(span, ty);
        }
    }

    #[test]
    fn state_arity() {
        for (ty, span, expected) in [
            (
                "&mut ValueState",
                "ValueState",
                "`ValueState` takes one type argument, the value's: `&mut ValueState<T>`",
            ),
            (
                "&mut state::ListState<A, B>",
                "ListState<A, B>",
                "`ListState` takes one type argument, the elements': `&mut ListState<T>`",
            ),
            (
                "&mut MapState<u8>",
                "MapState<u8>",
                "`MapState` takes two type arguments, the keys' and the values': \
                 `&mut MapState<K, V>`",
            ),
        ] {
            let params = format!("k: &K, t: T, s: {ty}, ctx: &mut Context<'_, O>");
            let (message, got_span) = single_error("", &with_params(&params));
            assert_eq!(message, expected, "{ty}");
            assert_eq!(got_span, span, "{ty}");
        }
    }

    #[test]
    fn state_patterns() {
        for pattern in ["_", "ref s", "(a)", "s @ _"] {
            let params =
                format!("k: &K, t: T, {pattern}: &mut ValueState<u8>, ctx: &mut Context<'_, O>");
            let (message, span) = single_error("", &with_params(&params));
            assert_eq!(
                message,
                "name each keyed state parameter with a plain identifier, e.g. \
                 `count: &mut ValueState<u64>`: it is the state's stable name",
                "{pattern}"
            );
            assert_eq!(span, pattern);
        }
    }

    #[test]
    fn return_type() {
        let (message, span) = single_error(
            "",
            "fn f(k: &K, t: T, ctx: &mut Context<'_, O>) -> Option<O> { None }",
        );
        assert_eq!(
            message,
            "a process function returns nothing: it emits its output through its context, \
             with `ctx.emit(..)`"
        );
        assert_eq!(span, "Option<O>");
    }

    #[test]
    fn underivable_or_clashing_struct_names() {
        let (message, span) = single_error("", "fn __(k: &K, t: T, ctx: &mut Context<'_, O>) {}");
        assert_eq!(
            message,
            "cannot name the process function's struct after `__`; \
             name it with `#[process_fn(name = MyFunction)]`"
        );
        assert_eq!(span, "__");

        let (message, span) =
            single_error("", "fn self_(k: &K, t: T, ctx: &mut Context<'_, O>) {}");
        assert!(message.starts_with("cannot name the process function's struct after `self_`"));
        assert_eq!(span, "self_");

        let (message, span) =
            single_error("", "fn Upper(k: &K, t: T, ctx: &mut Context<'_, O>) {}");
        assert_eq!(
            message,
            "the process function's struct cannot have the function's own name `Upper`; \
             name it with `#[process_fn(name = MyFunction)]`"
        );
        assert_eq!(span, "Upper");

        let (_, span) = single_error("name = f", "fn f(k: &K, t: T, ctx: &mut Context<'_, O>) {}");
        assert_eq!(span, "f");
    }
}
