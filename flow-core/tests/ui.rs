//! Compile-fail and compile-pass tests of the macros (`#[stream_job]`, `#[process_fn]`): each
//! misuse must be an error spanned on the offending token, with the message in the snapshot.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
