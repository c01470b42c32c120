//! Attribute arguments shared by the macros: a comma-separated list of
//! `key = value` pairs, such as `#[stream_job(name = "wc")]` or
//! `#[process_fn(on_timer = expire)]`.
//!
//! [`parse_args`] goes through the list, reporting unknown and duplicate
//! keys, and hands each known argument to the macro, which reads its value
//! with [`string_value`] or [`path_value`] (reporting the ones of the wrong
//! shape). Every problem is recorded in the
//! [`Ctxt`], so all of them are reported together.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprPath, Lit, LitStr, Meta, Token};

use crate::ctxt::Ctxt;
use crate::syntax::path_to_string;

/// The keys an attribute accepts, usually a fieldless enum.
pub(crate) trait ArgKey: Copy + Eq + 'static {
    /// Every key, in the order "expected ..." messages list them.
    const ALL: &'static [Self];

    /// The key as written, e.g. `name`.
    fn name(self) -> &'static str;

    /// An example value as written after `=`, without quotes, for the error
    /// messages: `word_count` gives `name = "word_count"` for a string and
    /// `name = word_count` for a path.
    fn example(self) -> &'static str;
}

/// The known key `path` names, if any.
fn key_of<K: ArgKey>(path: &syn::Path) -> Option<K> {
    K::ALL.iter().copied().find(|key| path.is_ident(key.name()))
}

/// The known keys as an English list: "`a`", "`a` or `b`", "`a`, `b` or `c`".
fn expected_keys<K: ArgKey>() -> String {
    let names: Vec<String> = K::ALL
        .iter()
        .map(|key| format!("`{}`", key.name()))
        .collect();
    match names.split_last() {
        None => "no arguments".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Goes through the arguments of `#[attribute(...)]` in order, calling
/// `each` with every argument of a known key, for it to read the value.
///
/// Records an unknown key (on its path) and a repeated key (on the repeat),
/// and skips both. Returns whether the list was well-formed: when it is not,
/// `syn`'s error is recorded and `each` is never called, as which keys the
/// list holds is unknown.
#[must_use = "a malformed list may hide arguments"]
pub(crate) fn parse_args<K: ArgKey>(
    cx: &mut Ctxt,
    attribute: &str,
    args: TokenStream,
    mut each: impl FnMut(&mut Ctxt, K, &Meta),
) -> bool {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(error) => {
            cx.syn_error(error);
            return false;
        }
    };

    let mut seen: Vec<K> = Vec::new();
    for meta in &metas {
        let path = meta.path();
        let Some(key) = key_of::<K>(path) else {
            cx.error_spanned_by(
                path,
                format_args!(
                    "unknown {attribute} attribute `{}`; expected {}",
                    path_to_string(path),
                    expected_keys::<K>()
                ),
            );
            continue;
        };
        if seen.contains(&key) {
            cx.error_spanned_by(
                path,
                format_args!("duplicate {attribute} attribute `{}`", key.name()),
            );
            continue;
        }
        seen.push(key);
        // Read right away, so that the errors come in the arguments' order.
        each(cx, key, meta);
    }
    true
}

/// The string literal of `key = "..."`, or `None` after recording why `meta`
/// is not one.
pub(crate) fn string_value<K: ArgKey>(cx: &mut Ctxt, key: K, meta: &Meta) -> Option<LitStr> {
    let (name, example) = (key.name(), key.example());
    let Meta::NameValue(name_value) = meta else {
        cx.error_spanned_by(
            meta,
            format_args!("expected `{name} = \"...\"`, e.g. `{name} = \"{example}\"`"),
        );
        return None;
    };
    match &name_value.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(value),
            attrs,
        }) if attrs.is_empty() => Some(value.clone()),
        other => {
            cx.error_spanned_by(
                other,
                format_args!("`{name}` must be a string literal, e.g. `{name} = \"{example}\"`"),
            );
            None
        }
    }
}

/// The path of `key = path` (no `<T as Trait>::` qualification), or `None`
/// after recording why `meta` is not one; `what` names the expected value in
/// that error, e.g. "an identifier".
pub(crate) fn path_value<K: ArgKey>(
    cx: &mut Ctxt,
    key: K,
    meta: &Meta,
    what: &str,
) -> Option<ExprPath> {
    let (name, example) = (key.name(), key.example());
    let Meta::NameValue(name_value) = meta else {
        cx.error_spanned_by(
            meta,
            format_args!("expected `{name} = ...`, e.g. `{name} = {example}`"),
        );
        return None;
    };
    match &name_value.value {
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => Some(path.clone()),
        other => {
            cx.error_spanned_by(
                other,
                format_args!("`{name}` must be {what}, e.g. `{name} = {example}`"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{error_list, tokens};

    /// Keys of a made-up `#[demo]` attribute.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Key {
        Title,
        Handler,
        Extra,
    }

    impl ArgKey for Key {
        const ALL: &'static [Self] = &[Self::Title, Self::Handler, Self::Extra];

        fn name(self) -> &'static str {
            match self {
                Self::Title => "title",
                Self::Handler => "handler",
                Self::Extra => "extra",
            }
        }

        fn example(self) -> &'static str {
            match self {
                Self::Title => "Demo",
                Self::Handler => "on_event",
                Self::Extra => "x",
            }
        }
    }

    /// One key only, for the "expected" list.
    #[derive(Clone, Copy, PartialEq, Eq)]
    struct Only;

    impl ArgKey for Only {
        const ALL: &'static [Self] = &[Self];

        fn name(self) -> &'static str {
            "only"
        }

        fn example(self) -> &'static str {
            "1"
        }
    }

    /// Each error's message with the source text it is spanned on.
    fn errors(cx: Ctxt) -> Vec<(String, String)> {
        cx.check()
            .err()
            .as_ref()
            .map(error_list)
            .unwrap_or_default()
    }

    /// Parses `args`, returning whether they were well-formed and the known
    /// keys in order; their values are read by `read`.
    fn keys(
        cx: &mut Ctxt,
        args: &str,
        mut read: impl FnMut(&mut Ctxt, Key, &Meta),
    ) -> (bool, Vec<Key>) {
        let mut keys = Vec::new();
        let well_formed = parse_args::<Key>(cx, "demo", tokens(args), |cx, key, meta| {
            keys.push(key);
            read(cx, key, meta);
        });
        (well_formed, keys)
    }

    #[test]
    fn known_keys_in_order() {
        let mut cx = Ctxt::new();
        let parsed = keys(&mut cx, r#"handler = a::b, title = "T","#, |_, _, _| {});
        assert_eq!(parsed, (true, vec![Key::Handler, Key::Title]));
        assert_eq!(errors(cx), []);
    }

    #[test]
    fn empty_list() {
        let mut cx = Ctxt::new();
        assert_eq!(keys(&mut cx, "", |_, _, _| {}), (true, vec![]));
        assert_eq!(errors(cx), []);
    }

    #[test]
    fn unknown_and_duplicate_keys_are_skipped() {
        let mut cx = Ctxt::new();
        let parsed = keys(
            &mut cx,
            r#"title = "a", titel = "b", a::title, title = "c", extra"#,
            |_, _, _| {},
        );
        assert_eq!(parsed, (true, vec![Key::Title, Key::Extra]));
        assert_eq!(
            errors(cx),
            [
                (
                    "unknown demo attribute `titel`; expected `title`, `handler` or `extra`".into(),
                    "titel".into()
                ),
                (
                    "unknown demo attribute `a::title`; expected `title`, `handler` or `extra`"
                        .into(),
                    "a::title".into()
                ),
                ("duplicate demo attribute `title`".into(), "title".into()),
            ]
        );
    }

    #[test]
    fn expected_key_lists() {
        assert_eq!(expected_keys::<Only>(), "`only`");
        assert_eq!(expected_keys::<Key>(), "`title`, `handler` or `extra`");
    }

    #[test]
    fn malformed_list() {
        let mut cx = Ctxt::new();
        let parsed = keys(&mut cx, "title = \"a\" extra", |_, _, _| {
            panic!("no argument of a malformed list is read")
        });
        assert_eq!(parsed, (false, vec![]));
        assert_eq!(errors(cx), [("expected `,`".into(), "extra".into())]);
    }

    #[test]
    fn values_are_read_in_order_with_the_key_errors() {
        let mut cx = Ctxt::new();
        let mut values = Vec::new();
        let _ = keys(
            &mut cx,
            r#"extra = 1, bogus, title = "T""#,
            |cx, key, meta| {
                values.push(string_value(cx, key, meta).map(|value| value.value()));
            },
        );
        assert_eq!(values, [None, Some("T".into())]);
        let messages: Vec<String> = errors(cx).into_iter().map(|(m, _)| m).collect();
        assert_eq!(
            messages,
            [
                "`extra` must be a string literal, e.g. `extra = \"x\"`",
                "unknown demo attribute `bogus`; expected `title`, `handler` or `extra`",
            ]
        );
    }

    #[test]
    fn string_values() {
        let mut cx = Ctxt::new();
        let mut values = Vec::new();
        let _ = keys(
            &mut cx,
            r#"title = "ok", handler = 1, extra(x)"#,
            |cx, key, meta| values.push(string_value(cx, key, meta).map(|value| value.value())),
        );
        assert_eq!(values, [Some("ok".into()), None, None]);
        assert_eq!(
            errors(cx),
            [
                (
                    "`handler` must be a string literal, e.g. `handler = \"on_event\"`".into(),
                    "1".into()
                ),
                (
                    "expected `extra = \"...\"`, e.g. `extra = \"x\"`".into(),
                    "extra(x)".into()
                ),
            ]
        );
    }

    #[test]
    fn path_values() {
        let mut cx = Ctxt::new();
        let mut values = Vec::new();
        let _ = keys(
            &mut cx,
            r#"handler = a::b, title = "T", extra = <T as A>::x"#,
            |cx, key, meta| {
                values.push(
                    path_value(cx, key, meta, "a path").map(|value| path_to_string(&value.path)),
                );
            },
        );
        assert_eq!(values, [Some("a::b".into()), None, None]);
        assert_eq!(
            errors(cx),
            [
                (
                    "`title` must be a path, e.g. `title = Demo`".into(),
                    "\"T\"".into()
                ),
                (
                    "`extra` must be a path, e.g. `extra = x`".into(),
                    "<T as A>::x".into()
                ),
            ]
        );

        let mut cx = Ctxt::new();
        let _ = keys(&mut cx, "handler", |cx, key, meta| {
            assert!(path_value(cx, key, meta, "a path").is_none());
        });
        assert_eq!(
            errors(cx),
            [(
                "expected `handler = ...`, e.g. `handler = on_event`".into(),
                "handler".into()
            )]
        );
    }
}
