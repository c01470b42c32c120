//! `#[process_fn]`: parse the attribute and the function ([`parse`]), check
//! them into a [`ProcessFn`] ([`check`]), and generate the keyed process
//! function that calls it ([`codegen`]).
//!
//! Everything here works on `proc_macro2` tokens so the unit tests can drive
//! it without a compiler.

mod check;
mod codegen;
mod parse;

use proc_macro2::TokenStream;
use syn::{AngleBracketedGenericArguments, Ident, Path, Type, Visibility};

use crate::ctxt::Ctxt;

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
    /// The configuration's type (`config = ...`), when the function takes
    /// one as its first parameter.
    config: Option<Path>,
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
    /// The configuration's type (`config = ...`): the stub then holds one,
    /// so `Name::new(config)` type checks.
    config: Option<Path>,
}

/// Parses and checks the attribute arguments and the annotated item,
/// collecting every problem rather than stopping at the first.
fn analyze(attr: TokenStream, item: TokenStream) -> Result<ProcessFn, Rejection> {
    let mut cx = Ctxt::new();
    let attrs = parse::ProcessAttrs::parse(&mut cx, attr);

    let func = match parse::function(item) {
        Ok(func) => func,
        Err(error) => {
            cx.syn_error(error);
            return cx
                .finish(None)
                .map_err(|errors| Rejection { errors, stub: None });
        }
    };
    let sig = &func.sig;

    check::check_qualifiers(&mut cx, sig);
    let params = check::check_params(&mut cx, &attrs, sig);
    check::check_output(&mut cx, sig);
    let name = check::struct_name(&mut cx, &attrs, sig);

    let check::Params {
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
            config: attrs.config.clone(),
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
            config: attrs.config,
        }),
        _ => None,
    };
    cx.finish(process_fn)
        .map_err(|errors| Rejection { errors, stub })
}

/// Helpers shared by the unit tests of `process_fn`'s modules.
#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::testing::{error_list, tokens};

    /// Runs the analysis expecting success.
    pub(super) fn accepted(attr: &str, item: &str) -> ProcessFn {
        match analyze(tokens(attr), tokens(item)) {
            Ok(process_fn) => process_fn,
            Err(rejection) => panic!("unexpected errors for `{item}`: {}", rejection.errors),
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

    /// A process function with `params`.
    pub(super) fn with_params(params: &str) -> String {
        format!("fn f({params}) {{}}")
    }

    /// A valid process function with state.
    pub(super) const VALID: &str = "
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

    /// The expansion of `#[process_fn(attr)] item`, parsed.
    pub(super) fn expansion(attr: &str, item: &str) -> syn::File {
        syn::parse2(expand(tokens(attr), tokens(item))).expect("the expansion must parse")
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{accepted, rejected, VALID};
    use super::StateKind;
    use crate::testing::normalized;

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
    fn all_problems_are_reported_together() {
        let (rejection, errors) = rejected(
            "nmae = X, on_timer = 1",
            "async fn f<T>(&self, k: K, s: &mut Vec<u8>, (a, b): &mut ListState<u8>) -> u8 {}",
        );
        let messages: Vec<&str> = errors.iter().map(|(message, _)| message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown process_fn attribute `nmae`; expected `on_timer`, `name` or `config`",
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
}
