//! Parsing `#[process_fn]`'s input: the attribute arguments, the annotated
//! function, and the shapes of its parameter types.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{ExprPath, Ident, ItemFn, Path, PathSegment, Type, TypePath};

use super::StateKind;
use crate::attr::{self, ArgKey};
use crate::ctxt::Ctxt;
use crate::syntax::{not_a_function, peel};

/// A known attribute argument key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    OnTimer,
    Name,
    Config,
}

impl ArgKey for Key {
    const ALL: &'static [Self] = &[Self::OnTimer, Self::Name, Self::Config];

    fn name(self) -> &'static str {
        match self {
            Self::OnTimer => "on_timer",
            Self::Name => "name",
            Self::Config => "config",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::OnTimer => "expire",
            Self::Name => "DetectFraud",
            Self::Config => "DedupConfig",
        }
    }
}

/// The attribute's arguments:
/// `#[process_fn(on_timer = path, name = Ident, config = Type)]`.
#[derive(Default)]
pub(super) struct ProcessAttrs {
    pub(super) on_timer: Option<Path>,
    pub(super) name: Option<Ident>,
    /// The configuration's type, a path (`config = DedupConfig`).
    pub(super) config: Option<Path>,
    /// Whether a `config` was given but is not valid (or the list is
    /// malformed): whether the function takes a configuration is then
    /// unknown, so its first parameter is not checked against one.
    pub(super) bad_config: bool,
    /// Whether a `name` was given but is not valid: the struct's name is then
    /// unknown.
    pub(super) bad_name: bool,
}

impl ProcessAttrs {
    /// Parses the arguments, recording every malformed, unknown or duplicate
    /// one in `cx` and keeping the valid ones.
    pub(super) fn parse(cx: &mut Ctxt, attr: TokenStream) -> Self {
        let mut attrs = Self::default();
        let well_formed = attr::parse_args(cx, "process_fn", attr, |cx, key, meta| match key {
            Key::OnTimer => {
                attrs.on_timer = attr::path_value(cx, key, meta, "the path of a function")
                    .map(|value| value.path);
            }
            Key::Name => {
                match attr::path_value(cx, key, meta, "an identifier")
                    .and_then(|value| ident_value(cx, &value))
                {
                    Some(name) => attrs.name = Some(name),
                    None => attrs.bad_name = true,
                }
            }
            Key::Config => match attr::path_value(cx, key, meta, "the path of a type") {
                Some(value) => attrs.config = Some(value.path),
                None => attrs.bad_config = true,
            },
        });
        if !well_formed {
            // Whether a `name` or a `config` was among them is unknown.
            attrs.bad_name = true;
            attrs.bad_config = true;
        }
        attrs
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

/// The annotated item as a function, or the error saying it is not one.
pub(super) fn function(item: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|error| not_a_function("process_fn", item, error))
}

/// The last segment of `ty` if it is a path (not `<T as Trait>::Name`).
pub(super) fn path_segment(ty: &Type) -> Option<&PathSegment> {
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
pub(super) fn is_context_like(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|segment| segment.ident == "Context")
}

/// The kind of keyed state `ty` names and its last path segment, whether by
/// mutable reference or not.
pub(super) fn state_kind(ty: &Type) -> Option<(StateKind, &PathSegment)> {
    let segment = last_segment(ty)?;
    Some((StateKind::of(&segment.ident)?, segment))
}

#[cfg(test)]
mod tests {
    use crate::process_fn::tests_support::{accepted, expansion, rejected, single_error, VALID};
    use crate::syntax::path_to_string;

    #[test]
    fn unknown_attribute() {
        let (message, span) = single_error("on_timr = expire", VALID);
        assert_eq!(
            message,
            "unknown process_fn attribute `on_timr`; expected `on_timer`, `name` or `config`"
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
            (
                "config = 1",
                "`config` must be the path of a type, e.g. `config = DedupConfig`",
                "1",
            ),
            (
                "config = &Cfg",
                "`config` must be the path of a type, e.g. `config = DedupConfig`",
                "&Cfg",
            ),
            (
                "config",
                "expected `config = ...`, e.g. `config = DedupConfig`",
                "config",
            ),
            ("42", "expected identifier", "42"),
        ] {
            let (message, got_span) = single_error(attr, VALID);
            assert_eq!(message, expected, "{attr}");
            assert_eq!(got_span, span, "{attr}");
        }
    }

    #[test]
    fn config_attribute() {
        let item = "fn f(cfg: &a::Cfg, k: &K, t: T, ctx: &mut Context<'_, O>) {}";
        let process_fn = accepted("config = a::Cfg, on_timer = t, name = N", item);
        let config = process_fn.config.expect("`config` was given");
        assert_eq!(path_to_string(&config), "a::Cfg");
        assert!(accepted("", VALID).config.is_none());

        let (_, errors) = rejected("config = a::Cfg, config = B", item);
        assert_eq!(
            errors,
            [(
                "duplicate process_fn attribute `config`".into(),
                "config".into()
            )]
        );
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
