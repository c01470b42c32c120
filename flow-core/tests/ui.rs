//! Compile-fail and compile-pass tests of the macros (`#[stream_job]`, `#[process_fn]`): each
//! misuse must be an error spanned on the offending token, with the message in the snapshot.

#[test]
fn ui() {
    // The pass cases run as job binaries: no dashboard, whose port other tests' jobs may hold.
    // Set before any thread of this test binary starts a process (this is its only test).
    std::env::set_var("FLOW_WEB_PORT", "0");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
