//! `#[process_fn]`: parse the attribute and the function, check them into a
//! [`ProcessFn`], and generate the keyed process function that calls it.
//!
//! Everything here works on `proc_macro2` tokens so the unit tests below can
//! drive it without a compiler.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{
    AngleBracketedGenericArguments, BoundLifetimes, Expr, ExprPath, FnArg, GenericArgument, Ident,
    ItemFn, Lifetime, Meta, Pat, PatIdent, PatType, Path, PathArguments, PathSegment, ReturnType,
    Signature, Token, Type, TypePath, TypeReference, Visibility,
};

use crate::ctxt::Ctxt;
use crate::syntax::{not_a_function, path_to_string, peel, span_range};

/// What a process function's signature must look like, for the error
/// messages.
const EXPECTED_SIGNATURE: &str = "`fn my_fn(key: &Key, item: Record, \
     count: &mut ValueState<u64>, ctx: &mut Context<'_, Out>)`";

/// The kinds of keyed state parameters, for the error messages.
const STATE_KINDS: &str = "`&mut ValueState<T>`, `&mut ListState<T>` or `&mut MapState<K, V>`";

/// Expands `#[process_fn(attr)] item`.
///
/// A valid function expands to the function unchanged plus a unit struct
/// implementing `KeyedProcessFunction` by calling it, and the struct of its
/// keyed state. Otherwise the function is kept unchanged, every problem found
/// is reported as its own `compile_error!`, and a stub struct (when its name
/// is known) keeps the uses of the struct from adding more errors.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match analyze(attr, item.clone()) {
        Ok(process_fn) => process_fn.generate(item),
        Err(rejection) => rejection.into_tokens(item),
    }
}

/// A checked process function: everything code generation needs.
struct ProcessFn {
    /// The function's visibility, given to the generated structs.
    vis: Visibility,
    /// The function's name.
    ident: Ident,
    /// The generated struct's name (`name = ...` or the function's name in
    /// UpperCamelCase).
    name: Ident,
    /// `K` of the key parameter `&K`.
    key: Type,
    /// The record parameter's type.
    record: Type,
    /// The keyed state parameters, in order.
    states: Vec<StateParam>,
    /// `O` of the context parameter `&mut Context<'_, O>`.
    out: Type,
    /// The timer function (`on_timer = ...`).
    on_timer: Option<Path>,
}

/// A keyed state parameter: `ident: &mut ValueState<T>` and the like.
struct StateParam {
    /// The parameter's name, the state's name.
    ident: Ident,
    /// Which kind of state.
    kind: StateKind,
    /// The state type's arguments as written, e.g. `<T>`.
    args: AngleBracketedGenericArguments,
    /// The parameter's type as written, for spans.
    ty: Type,
}

/// A kind of keyed state, by its type's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StateKind {
    Value,
    List,
    Map,
}

impl StateKind {
    /// The kind a type named `ident` is, if any.
    fn of(ident: &Ident) -> Option<Self> {
        if ident == "ValueState" {
            Some(Self::Value)
        } else if ident == "ListState" {
            Some(Self::List)
        } else if ident == "MapState" {
            Some(Self::Map)
        } else {
            None
        }
    }

    /// The type's name.
    fn type_name(self) -> &'static str {
        match self {
            Self::Value => "ValueState",
            Self::List => "ListState",
            Self::Map => "MapState",
        }
    }

    /// How many type arguments the type takes.
    fn arity(self) -> usize {
        match self {
            Self::Value | Self::List => 1,
            Self::Map => 2,
        }
    }

    /// What the wrong number of type arguments is reported as.
    fn arity_message(self) -> &'static str {
        match self {
            Self::Value => {
                "`ValueState` takes one type argument, the value's: `&mut ValueState<T>`"
            }
            Self::List => "`ListState` takes one type argument, the elements': `&mut ListState<T>`",
            Self::Map => {
                "`MapState` takes two type arguments, the keys' and the values': \
                 `&mut MapState<K, V>`"
            }
        }
    }
}

/// Why a process function was rejected, and how to report it.
struct Rejection {
    /// Every problem found, combined.
    errors: syn::Error,
    /// The stand-in for the generated struct, when its name is known (boxed:
    /// it holds three types).
    stub: Option<Box<Stub>>,
}

/// A stand-in for the struct a rejected function would have generated, so
/// that its uses do not add "cannot find" errors to the real problems.
struct Stub {
    vis: Visibility,
    name: Ident,
    /// The key, record and output types, when all three are known: the stub
    /// then implements `KeyedProcessFunction` too, so `.process(Name)` type
    /// checks.
    types: Option<(Type, Type, Type)>,
}

/// Parses and checks the attribute arguments and the annotated item,
/// collecting every problem rather than stopping at the first.
fn analyze(attr: TokenStream, item: TokenStream) -> Result<ProcessFn, Rejection> {
    let mut cx = Ctxt::new();
    let attrs = ProcessAttrs::parse(&mut cx, attr);

    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            cx.syn_error(not_a_function("process_fn", item, error));
            return cx
                .finish(None)
                .map_err(|errors| Rejection { errors, stub: None });
        }
    };
    let sig = &func.sig;

    check_qualifiers(&mut cx, sig);
    let params = check_params(&mut cx, sig);
    check_output(&mut cx, sig);
    let name = struct_name(&mut cx, &attrs, sig);

    let Params {
        key,
        record,
        states,
        out,
    } = params;
    let stub = name.clone().map(|name| {
        Box::new(Stub {
            vis: func.vis.clone(),
            name,
            types: match (key, record, out) {
                (Some(key), Some(record), Some(out)) => {
                    Some((key.clone(), record.clone(), out.clone()))
                }
                _ => None,
            },
        })
    });
    let process_fn = match (name, key, record, out) {
        (Some(name), Some(key), Some(record), Some(out)) => Some(ProcessFn {
            vis: func.vis.clone(),
            ident: sig.ident.clone(),
            name,
            key: key.clone(),
            record: record.clone(),
            states,
            out: out.clone(),
            on_timer: attrs.on_timer,
        }),
        _ => None,
    };
    cx.finish(process_fn)
        .map_err(|errors| Rejection { errors, stub })
}

// ---------------------------------------------------------------------------
// Attribute arguments
// ---------------------------------------------------------------------------

/// A known attribute argument key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    OnTimer,
    Name,
}

impl Key {
    /// The key `path` names, if it is a known one.
    fn of(path: &Path) -> Option<Self> {
        if path.is_ident("on_timer") {
            Some(Self::OnTimer)
        } else if path.is_ident("name") {
            Some(Self::Name)
        } else {
            None
        }
    }

    /// The key as written.
    fn as_str(self) -> &'static str {
        match self {
            Self::OnTimer => "on_timer",
            Self::Name => "name",
        }
    }

    /// An example value, for the error messages.
    fn example(self) -> &'static str {
        match self {
            Self::OnTimer => "expire",
            Self::Name => "DetectFraud",
        }
    }
}

/// The attribute's arguments: `#[process_fn(on_timer = path, name = Ident)]`.
#[derive(Default)]
struct ProcessAttrs {
    on_timer: Option<Path>,
    name: Option<Ident>,
    /// Whether a `name` was given but is not valid: the struct's name is then
    /// unknown.
    bad_name: bool,
}

impl ProcessAttrs {
    /// Parses the arguments, recording every malformed, unknown or duplicate
    /// one in `cx` and keeping the valid ones.
    fn parse(cx: &mut Ctxt, attr: TokenStream) -> Self {
        let mut attrs = Self::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
            Ok(metas) => metas,
            Err(error) => {
                cx.syn_error(error);
                // Whether a `name` was among them is unknown.
                attrs.bad_name = true;
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
                        "unknown process_fn attribute `{}`; expected `on_timer` or `name`",
                        path_to_string(path)
                    ),
                );
                continue;
            };
            if seen.contains(&key) {
                cx.error_spanned_by(
                    path,
                    format_args!("duplicate process_fn attribute `{}`", key.as_str()),
                );
                continue;
            }
            seen.push(key);

            let value = path_value(cx, key, meta);
            match key {
                Key::OnTimer => attrs.on_timer = value.map(|value| value.path.clone()),
                Key::Name => match value.map(|value| ident_value(cx, value)) {
                    Some(Some(name)) => attrs.name = Some(name),
                    _ => attrs.bad_name = true,
                },
            }
        }
        attrs
    }
}

/// The path value of `key = path`, or `None` after recording why `meta` is
/// not one.
fn path_value<'a>(cx: &mut Ctxt, key: Key, meta: &'a Meta) -> Option<&'a ExprPath> {
    let (text, example) = (key.as_str(), key.example());
    let Meta::NameValue(name_value) = meta else {
        cx.error_spanned_by(
            meta,
            format_args!("expected `{text} = ...`, e.g. `{text} = {example}`"),
        );
        return None;
    };
    match &name_value.value {
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => Some(path),
        other => {
            let what = match key {
                Key::OnTimer => "the path of a function",
                Key::Name => "an identifier",
            };
            cx.error_spanned_by(
                other,
                format_args!("`{text}` must be {what}, e.g. `{text} = {example}`"),
            );
            None
        }
    }
}

/// The identifier `path` is, or `None` after recording that it is not one.
fn ident_value(cx: &mut Ctxt, path: &ExprPath) -> Option<Ident> {
    // Parsing as an `Ident` rejects keywords such as `Self`.
    match path.path.get_ident() {
        Some(ident) if syn::parse2::<Ident>(ident.to_token_stream()).is_ok() => Some(ident.clone()),
        _ => {
            cx.error_spanned_by(
                path,
                "`name` must be an identifier, e.g. `name = DetectFraud`",
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// The annotated function
// ---------------------------------------------------------------------------

/// Checks the function's qualifiers, generics and variadic arguments.
fn check_qualifiers(cx: &mut Ctxt, sig: &Signature) {
    if let Some(token) = &sig.constness {
        cx.error_spanned_by(token, "a process function cannot be `const`");
    }
    if let Some(token) = &sig.asyncness {
        cx.error_spanned_by(
            token,
            "a process function cannot be `async`: it runs to completion on each record \
             and timer",
        );
    }
    if let Some(token) = &sig.unsafety {
        cx.error_spanned_by(token, "a process function cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a process function cannot be `extern`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "a process function cannot have generic parameters",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "a process function cannot have a `where` clause",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a process function cannot be variadic");
    }
}

/// Checks that the function returns nothing.
fn check_output(cx: &mut Ctxt, sig: &Signature) {
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
fn struct_name(cx: &mut Ctxt, attrs: &ProcessAttrs, sig: &Signature) -> Option<Ident> {
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
struct Params<'a> {
    /// `K` of the key parameter `&K`.
    key: Option<&'a Type>,
    /// The record's type.
    record: Option<&'a Type>,
    /// The valid keyed state parameters.
    states: Vec<StateParam>,
    /// `O` of the context parameter `&mut Context<'_, O>`.
    out: Option<&'a Type>,
}

/// Checks the parameters: `&K`, the record, keyed state, then the context.
fn check_params<'a>(cx: &mut Ctxt, sig: &'a Signature) -> Params<'a> {
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "a process function is a free function and cannot take `self`",
            ),
            FnArg::Typed(param) => params.push(param),
        }
    }

    let mut checked = Params {
        key: params.first().and_then(|key| check_key(cx, key)),
        record: None,
        states: Vec::new(),
        out: None,
    };
    let [_, record, rest @ ..] = params.as_slice() else {
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

/// The last segment of `ty` if it is a path (not `<T as Trait>::Name`).
fn path_segment(ty: &Type) -> Option<&PathSegment> {
    match peel(ty) {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        _ => None,
    }
}

/// The last path segment of `ty` once references are stripped, if it is a
/// path.
fn last_segment(mut ty: &Type) -> Option<&PathSegment> {
    loop {
        match peel(ty) {
            Type::Reference(reference) => ty = &reference.elem,
            ty => return path_segment(ty),
        }
    }
}

/// Whether `ty` names a `Context`, whether by mutable reference or not.
fn is_context_like(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|segment| segment.ident == "Context")
}

/// The kind of keyed state `ty` names and its last path segment, whether by
/// mutable reference or not.
fn state_kind(ty: &Type) -> Option<(StateKind, &PathSegment)> {
    let segment = last_segment(ty)?;
    Some((StateKind::of(&segment.ident)?, segment))
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

// ---------------------------------------------------------------------------
// Code generation
// ---------------------------------------------------------------------------

/// The generated methods' own parameters: hygienic (`Span::mixed_site`), so
/// that a function named like one of them is still called.
struct Locals {
    key: Ident,
    item: Ident,
    timestamp: Ident,
    state: Ident,
    ctx: Ident,
}

impl Locals {
    fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Self {
            key: local("key"),
            item: local("item"),
            timestamp: local("timestamp"),
            state: local("state"),
            ctx: local("ctx"),
        }
    }
}

impl StateParam {
    /// The state struct's field type: the `flow_core` state type with the
    /// arguments as written.
    fn field_type(&self) -> TokenStream {
        let name = Ident::new(self.kind.type_name(), self.ident.span());
        let args = &self.args;
        quote!(::flow_core::state::#name #args)
    }
}

impl ProcessFn {
    /// The function unchanged, plus the process function's struct, its state
    /// struct and their trait implementations.
    fn generate(&self, item: TokenStream) -> TokenStream {
        let Self {
            vis,
            ident,
            name,
            key,
            record,
            states,
            out,
            on_timer,
        } = self;
        let function = ident.unraw().to_string();
        let state_name = format_ident!("{}State", name);
        let Locals {
            key: key_var,
            item: item_var,
            timestamp: timestamp_var,
            state: state_var,
            ctx: ctx_var,
        } = Locals::new();

        let doc =
            format!(" Keyed process function generated by `#[process_fn]` from `{function}`.");
        let state_doc =
            format!(" Keyed state of [`{name}`]: one field per state parameter of `{function}`.");
        let fields = states.iter().map(|state| {
            let field = &state.ident;
            let ty = state.field_type();
            let doc = format!(" The state parameter `{}` of `{function}`.", field.unraw());
            quote! {
                #[doc = #doc]
                #vis #field: #ty
            }
        });
        let names = states.iter().map(|state| state.ident.unraw().to_string());
        let context = quote!(::flow_core::process::Context<'_, #out>);

        // The state arguments of `ident`'s call, each spanned on its
        // parameter's type.
        let state_args: Vec<TokenStream> = states
            .iter()
            .map(|state| {
                let field = &state.ident;
                let (start, _) = span_range(&state.ty);
                quote_spanned!(start=> &mut #state_var.#field)
            })
            .collect();
        let call = quote_spanned! {ident.span()=>
            #ident(#key_var, #item_var, #(#state_args,)* #ctx_var)
        };

        // The timer function's call is spanned on its path, so that a
        // signature not matching the process function's is reported there.
        let on_timer = on_timer.as_ref().map(|path| {
            let (_, end) = span_range(path);
            let args = states.iter().map(|state| {
                let field = &state.ident;
                quote_spanned!(end=> &mut #state_var.#field)
            });
            let call = quote_spanned! {end=>
                #path(#key_var, #timestamp_var, #(#args,)* #ctx_var)
            };
            quote! {
                fn on_timer(
                    &mut self,
                    #key_var: &#key,
                    #timestamp_var: ::flow_core::record::Timestamp,
                    #state_var: &mut #state_name,
                    #ctx_var: &mut #context,
                ) {
                    #call
                }
            }
        });

        quote! {
            #item

            #[doc = #doc]
            #[derive(Clone, Copy, Debug, Default)]
            #vis struct #name;

            #[doc = #state_doc]
            #[derive(Default)]
            #vis struct #state_name {
                #(#fields,)*
            }

            impl ::flow_core::state::KeyedStateNames for #state_name {
                const NAMES: &'static [&'static str] = &[#(#names),*];
            }

            impl ::flow_core::process::KeyedProcessFunction<#key, #record> for #name {
                type State = #state_name;
                type Out = #out;

                fn process_element(
                    &mut self,
                    #key_var: &#key,
                    #item_var: #record,
                    #state_var: &mut #state_name,
                    #ctx_var: &mut #context,
                ) {
                    #call
                }

                #on_timer
            }
        }
    }
}

impl Stub {
    /// The stand-in struct, and its stand-in implementation when the types
    /// are known. Neither ever runs: the crate does not compile.
    fn generate(&self) -> TokenStream {
        let Self { vis, name, types } = self;
        let implementation = types.as_ref().map(|(key, record, out)| {
            quote! {
                impl ::flow_core::process::KeyedProcessFunction<#key, #record> for #name {
                    type State = ();
                    type Out = #out;
                    fn process_element(
                        &mut self,
                        _: &#key,
                        _: #record,
                        _: &mut (),
                        _: &mut ::flow_core::process::Context<'_, #out>,
                    ) {
                    }
                }
            }
        });
        quote! {
            /// Stand-in for the struct of a misused `#[process_fn]`.
            #[derive(Clone, Copy, Debug, Default)]
            #vis struct #name;

            #implementation
        }
    }
}

impl Rejection {
    /// The function (or item) unchanged, the errors, and the stub when there
    /// is one.
    fn into_tokens(self, item: TokenStream) -> TokenStream {
        let errors = self.errors.to_compile_error();
        let stub = self.stub.as_deref().map(Stub::generate);
        quote! {
            #item
            #errors
            #stub
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::Item;

    /// Parses Rust source into tokens carrying real source locations.
    fn tokens(source: &str) -> TokenStream {
        source.parse().expect("test input must tokenize")
    }

    /// Runs the analysis expecting success.
    fn accepted(attr: &str, item: &str) -> ProcessFn {
        match analyze(tokens(attr), tokens(item)) {
            Ok(process_fn) => process_fn,
            Err(rejection) => panic!("unexpected errors for `{item}`: {}", rejection.errors),
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

    /// A process function with `params`.
    fn with_params(params: &str) -> String {
        format!("fn f({params}) {{}}")
    }

    const VALID: &str = "
        /// Flags small transactions followed by large ones.
        pub fn detect_fraud(
            account: &u64,
            tx: Tx,
            last_small: &mut ValueState<(i64, f64)>,
            pending: &mut ListState<Tx>,
            ctx: &mut Context<'_, Alert>,
        ) {
            let _ = (account, tx, last_small, pending, ctx);
        }
    ";

    /// Normalizes token spacing so generated code can be compared to source.
    fn normalized(tokens: impl ToTokens) -> String {
        tokens.to_token_stream().to_string()
    }

    /// The expansion of `#[process_fn(attr)] item`, parsed.
    fn expansion(attr: &str, item: &str) -> syn::File {
        syn::parse2(expand(tokens(attr), tokens(item))).expect("the expansion must parse")
    }

    #[test]
    fn valid_function_generates_the_structs_and_impls_after_the_unchanged_function() {
        let file = expansion("", VALID);
        let original: ItemFn = syn::parse2(tokens(VALID)).expect("valid input");
        assert!(matches!(&file.items[0], Item::Fn(f) if *f == original));

        let expected: syn::File = syn::parse_quote! {
            #[doc = " Keyed process function generated by `#[process_fn]` from `detect_fraud`."]
            #[derive(Clone, Copy, Debug, Default)]
            pub struct DetectFraud;

            #[doc = " Keyed state of [`DetectFraud`]: one field per state parameter of `detect_fraud`."]
            #[derive(Default)]
            pub struct DetectFraudState {
                #[doc = " The state parameter `last_small` of `detect_fraud`."]
                pub last_small: ::flow_core::state::ValueState<(i64, f64)>,
                #[doc = " The state parameter `pending` of `detect_fraud`."]
                pub pending: ::flow_core::state::ListState<Tx>,
            }

            impl ::flow_core::state::KeyedStateNames for DetectFraudState {
                const NAMES: &'static [&'static str] = &["last_small", "pending"];
            }

            impl ::flow_core::process::KeyedProcessFunction<u64, Tx> for DetectFraud {
                type State = DetectFraudState;
                type Out = Alert;

                fn process_element(
                    &mut self,
                    key: &u64,
                    item: Tx,
                    state: &mut DetectFraudState,
                    ctx: &mut ::flow_core::process::Context<'_, Alert>,
                ) {
                    detect_fraud(key, item, &mut state.last_small, &mut state.pending, ctx)
                }
            }
        };
        assert_eq!(file.items.len(), 1 + expected.items.len());
        for (got, expected) in file.items[1..].iter().zip(&expected.items) {
            assert_eq!(normalized(got), normalized(expected));
        }
    }

    #[test]
    fn on_timer_generates_a_call_with_the_same_state() {
        let file = expansion("on_timer = timers::expire", VALID);
        let Some(Item::Impl(implementation)) = file.items.last() else {
            panic!("the expansion must end with the trait impl");
        };
        let expected: syn::ImplItem = syn::parse_quote! {
            fn on_timer(
                &mut self,
                key: &u64,
                timestamp: ::flow_core::record::Timestamp,
                state: &mut DetectFraudState,
                ctx: &mut ::flow_core::process::Context<'_, Alert>,
            ) {
                timers::expire(key, timestamp, &mut state.last_small, &mut state.pending, ctx)
            }
        };
        assert_eq!(implementation.items.len(), 4);
        assert_eq!(normalized(&implementation.items[3]), normalized(expected));
    }

    #[test]
    fn stateless_private_function() {
        let file = expansion(
            "",
            "fn pass(_: &K, item: T, ctx: &mut Context<'_, T>) { ctx.emit(item) }",
        );
        let expected: syn::File = syn::parse_quote! {
            #[doc = " Keyed state of [`Pass`]: one field per state parameter of `pass`."]
            #[derive(Default)]
            struct PassState {}

            impl ::flow_core::state::KeyedStateNames for PassState {
                const NAMES: &'static [&'static str] = &[];
            }
        };
        assert_eq!(normalized(&file.items[2]), normalized(&expected.items[0]));
        assert_eq!(normalized(&file.items[3]), normalized(&expected.items[1]));
        assert!(
            matches!(&file.items[1], Item::Struct(s) if matches!(s.vis, Visibility::Inherited))
        );
    }

    #[test]
    fn model_of_a_valid_function() {
        let process_fn = accepted("", VALID);
        assert_eq!(process_fn.ident, "detect_fraud");
        assert_eq!(process_fn.name, "DetectFraud");
        assert_eq!(normalized(&process_fn.key), "u64");
        assert_eq!(normalized(&process_fn.record), "Tx");
        assert_eq!(normalized(&process_fn.out), "Alert");
        assert_eq!(normalized(&process_fn.vis), "pub");
        assert!(process_fn.on_timer.is_none());
        let states: Vec<(String, StateKind, String)> = process_fn
            .states
            .iter()
            .map(|s| (s.ident.to_string(), s.kind, normalized(&s.args)))
            .collect();
        assert_eq!(
            states,
            [
                (
                    "last_small".into(),
                    StateKind::Value,
                    "< (i64 , f64) >".into()
                ),
                ("pending".into(), StateKind::List, "< Tx >".into()),
            ]
        );
    }

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
    fn state_names_are_unraw() {
        let file = expansion(
            "",
            "fn f(k: &K, t: T, r#type: &mut ValueState<u8>, ctx: &mut Context<'_, O>) {}",
        );
        let Item::Impl(names) = &file.items[3] else {
            panic!("expected the KeyedStateNames impl");
        };
        assert!(normalized(names).contains("& [\"type\"]"));
        assert!(normalized(&file.items[2]).contains("r#type"));
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
    fn unknown_attribute() {
        let (message, span) = single_error("on_timr = expire", VALID);
        assert_eq!(
            message,
            "unknown process_fn attribute `on_timr`; expected `on_timer` or `name`"
        );
        assert_eq!(span, "on_timr");
    }

    #[test]
    fn duplicate_attribute_is_reported_on_the_second() {
        let attr = "name = A, on_timer = t, name = B";
        let (rejection, errors) = rejected(attr, VALID);
        assert_eq!(
            errors,
            [(
                "duplicate process_fn attribute `name`".into(),
                "name".into()
            )]
        );
        let second = attr.rfind("name").expect("two `name`s");
        assert_eq!(rejection.errors.span().byte_range(), second..second + 4);
    }

    #[test]
    fn wrong_attribute_values() {
        for (attr, expected, span) in [
            (
                "name = \"Detect\"",
                "`name` must be an identifier, e.g. `name = DetectFraud`",
                "\"Detect\"",
            ),
            (
                "name = a::B",
                "`name` must be an identifier, e.g. `name = DetectFraud`",
                "a::B",
            ),
            (
                "name = Self",
                "`name` must be an identifier, e.g. `name = DetectFraud`",
                "Self",
            ),
            (
                "on_timer = 1",
                "`on_timer` must be the path of a function, e.g. `on_timer = expire`",
                "1",
            ),
            (
                "on_timer = |k| k",
                "`on_timer` must be the path of a function, e.g. `on_timer = expire`",
                "|k| k",
            ),
            (
                "on_timer",
                "expected `on_timer = ...`, e.g. `on_timer = expire`",
                "on_timer",
            ),
            (
                "name(X)",
                "expected `name = ...`, e.g. `name = DetectFraud`",
                "name(X)",
            ),
            ("42", "expected identifier", "42"),
        ] {
            let (message, got_span) = single_error(attr, VALID);
            assert_eq!(message, expected, "{attr}");
            assert_eq!(got_span, span, "{attr}");
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

    #[test]
    fn all_problems_are_reported_together() {
        let (rejection, errors) = rejected(
            "nmae = X, on_timer = 1",
            "async fn f<T>(&self, k: K, s: &mut Vec<u8>, (a, b): &mut ListState<u8>) -> u8 {}",
        );
        let messages: Vec<&str> = errors.iter().map(|(message, _)| message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown process_fn attribute `nmae`; expected `on_timer` or `name`",
                "`on_timer` must be the path of a function, e.g. `on_timer = expire`",
                "a process function cannot be `async`: it runs to completion on each record \
                 and timer",
                "a process function cannot have generic parameters",
                "a process function is a free function and cannot take `self`",
                "a process function's first parameter is its key, by shared reference: \
                 `key: &Key`",
                "missing the context: the last parameter of a process function must be \
                 `ctx: &mut Context<'_, Out>`, with `Out` the type of the records it emits",
                "name each keyed state parameter with a plain identifier, e.g. \
                 `count: &mut ValueState<u64>`: it is the state's stable name",
                "a process function returns nothing: it emits its output through its context, \
                 with `ctx.emit(..)`",
            ]
        );
        let stub = rejection.stub.expect("the name is known");
        assert_eq!(stub.name, "F");
        assert!(stub.types.is_none(), "the output type is unknown");
    }

    #[test]
    fn invalid_function_keeps_the_function_and_adds_errors_and_a_stub() {
        let item = "pub fn count(k: &u8, t: T, s: &mut Vec<u8>, ctx: &mut Context<'_, O>) {}";
        let file = expansion("", item);
        assert_eq!(
            file.items.len(),
            4,
            "fn, compile_error!, stub struct and impl"
        );

        let original: ItemFn = syn::parse2(tokens(item)).expect("valid input");
        assert!(matches!(&file.items[0], Item::Fn(f) if *f == original));
        let Item::Macro(error) = &file.items[1] else {
            panic!(
                "expected `compile_error!`, found {}",
                normalized(&file.items[1])
            );
        };
        assert_eq!(
            normalized(&error.mac.path),
            normalized(quote!(::core::compile_error))
        );
        let expected: syn::File = syn::parse_quote! {
            /// Stand-in for the struct of a misused `#[process_fn]`.
            #[derive(Clone, Copy, Debug, Default)]
            pub struct Count;

            impl ::flow_core::process::KeyedProcessFunction<u8, T> for Count {
                type State = ();
                type Out = O;
                fn process_element(
                    &mut self,
                    _: &u8,
                    _: T,
                    _: &mut (),
                    _: &mut ::flow_core::process::Context<'_, O>,
                ) {
                }
            }
        };
        assert_eq!(normalized(&file.items[2]), normalized(&expected.items[0]));
        assert_eq!(normalized(&file.items[3]), normalized(&expected.items[1]));
    }

    #[test]
    fn stub_without_impl_when_the_types_are_unknown_and_none_without_a_name() {
        let item = "fn count(k: &u8, t: T, n: &mut ValueState<u8>) {}";
        let file = expansion("name = Counter", item);
        assert_eq!(file.items.len(), 3, "fn, compile_error!, stub struct");
        assert!(matches!(&file.items[2], Item::Struct(s) if s.ident == "Counter"));

        let file = expansion("name = \"Counter\"", item);
        assert_eq!(file.items.len(), 3, "fn and two compile_error!s");
        assert!(matches!(&file.items[2], Item::Macro(_)));
    }

    #[test]
    fn not_a_function() {
        let item = "pub struct Detect;";
        let (rejection, errors) = rejected("", item);
        assert_eq!(
            errors,
            [(
                "`#[process_fn]` can only be applied to a function".into(),
                "struct".into()
            )]
        );
        assert!(rejection.stub.is_none());
        let file = expansion("", item);
        assert_eq!(file.items.len(), 2, "the struct and the compile_error!");
    }
}
