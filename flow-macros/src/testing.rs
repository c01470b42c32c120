//! Helpers for the unit tests, which drive the macros on `proc_macro2` tokens
//! carrying real source locations (its `span-locations` feature), so that they
//! can check which source text each error is spanned on.

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Parses Rust source into tokens carrying real source locations.
pub(crate) fn tokens(source: &str) -> TokenStream {
    source.parse().expect("test input must tokenize")
}

/// Normalizes token spacing so generated code can be compared to source.
pub(crate) fn normalized(tokens: impl ToTokens) -> String {
    tokens.to_token_stream().to_string()
}

/// Each error combined in `errors`: its message and the source text it is
/// spanned on.
pub(crate) fn error_list(errors: &syn::Error) -> Vec<(String, String)> {
    errors
        .clone()
        .into_iter()
        .map(|error| {
            let text = error.span().source_text().unwrap_or_default();
            (error.to_string(), text)
        })
        .collect()
}
