//! Parsing `#[stream_job]`'s input: the attribute arguments, the annotated
//! function, and its doc comments.

use proc_macro2::TokenStream;
use syn::{Attribute, Expr, ExprLit, ItemFn, Lit, LitStr, Meta};

use crate::attr::{self, ArgKey};
use crate::ctxt::Ctxt;
use crate::syntax::not_a_function;

/// A known attribute argument key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Name,
    About,
}

impl ArgKey for Key {
    const ALL: &'static [Self] = &[Self::Name, Self::About];

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::About => "about",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Name => "word_count",
            Self::About => "Counts words.",
        }
    }
}

/// The attribute's arguments: `#[stream_job(name = "...", about = "...")]`.
#[derive(Default)]
pub(super) struct JobAttrs {
    pub(super) name: Option<LitStr>,
    pub(super) about: Option<LitStr>,
}

impl JobAttrs {
    /// Parses the arguments, recording every malformed, unknown or duplicate
    /// one in `cx` and keeping the valid ones.
    pub(super) fn parse(cx: &mut Ctxt, attr: TokenStream) -> Self {
        let mut attrs = Self::default();
        // A malformed list is recorded; the job's name and about text then
        // take their defaults.
        let _well_formed = attr::parse_args(cx, "stream_job", attr, |cx, key, meta| {
            let Some(value) = attr::string_value(cx, key, meta) else {
                return;
            };
            match key {
                Key::Name if value.value().trim().is_empty() => {
                    cx.error_spanned_by(value, "the stream job's `name` must not be empty");
                }
                Key::Name => attrs.name = Some(value),
                Key::About => attrs.about = Some(value),
            }
        });
        attrs
    }
}

/// The annotated item as a function, or the error saying it is not one.
pub(super) fn function(item: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|error| not_a_function("stream_job", item, error))
}

/// The doc comments in `attrs`: each line trimmed, joined with `'\n'`, with
/// leading and trailing blank lines dropped. `#[doc = ...]` attributes whose
/// value is not a string literal (e.g. `include_str!`) are skipped.
pub(super) fn doc_text(attrs: &[Attribute]) -> String {
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

#[cfg(test)]
mod tests {
    use crate::job::expand;
    use crate::job::tests_support::{accepted, rejected, single_error, VALID};
    use crate::testing::{normalized, tokens};
    use proc_macro2::TokenStream;

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
