//! Syntax helpers shared by the macros.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Item, Path, Type};

/// `a::b` for a path, without any generic arguments.
pub(crate) fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let prefix = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{prefix}{}", segments.join("::"))
}

/// The error for an item annotated with `#[attribute]` that is not a
/// function, spanned on the keyword saying what it is instead.
pub(crate) fn not_a_function(
    attribute: &str,
    item: TokenStream,
    parse_error: syn::Error,
) -> syn::Error {
    let Ok(item) = syn::parse2::<Item>(item) else {
        return parse_error;
    };
    let keyword = match &item {
        Item::Const(item) => item.const_token.to_token_stream(),
        Item::Enum(item) => item.enum_token.to_token_stream(),
        Item::ExternCrate(item) => item.extern_token.to_token_stream(),
        Item::ForeignMod(item) => item.abi.to_token_stream(),
        Item::Impl(item) => item.impl_token.to_token_stream(),
        Item::Macro(item) => item.mac.path.to_token_stream(),
        Item::Mod(item) => item.mod_token.to_token_stream(),
        Item::Static(item) => item.static_token.to_token_stream(),
        Item::Struct(item) => item.struct_token.to_token_stream(),
        Item::Trait(item) => item.trait_token.to_token_stream(),
        Item::TraitAlias(item) => item.trait_token.to_token_stream(),
        Item::Type(item) => item.type_token.to_token_stream(),
        Item::Union(item) => item.union_token.to_token_stream(),
        Item::Use(item) => item.use_token.to_token_stream(),
        // Not an item syn knows, e.g. a function without a body: syn's own
        // error says what is wrong.
        Item::Verbatim(_) => return parse_error,
        other => other.to_token_stream(),
    };
    syn::Error::new_spanned(
        keyword,
        format_args!("`#[{attribute}]` can only be applied to a function"),
    )
}

/// `ty` without the invisible groups `macro_rules!` wraps `$t:ty` in, or
/// redundant parentheses.
pub(crate) fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

/// The spans of the first and last tokens of `tokens`.
///
/// Generated tokens spanned from the first to the last token of a piece of
/// user code make the compiler underline all of that code in its diagnostics.
pub(crate) fn span_range(tokens: &impl ToTokens) -> (Span, Span) {
    let mut tokens = tokens.to_token_stream().into_iter();
    let first = tokens
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    let last = tokens.last().map_or(first, |token| token.span());
    (first, last)
}
