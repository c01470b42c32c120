//! Procedural macros of flow.
//!
//! Use them through `flow_core` (`use flow_core::prelude::*;`), not directly:
//! the code they generate refers to `::flow_core`.
//!
//! - [`macro@stream_job`] turns a function into the `main` of a job binary.

mod ctxt;
mod job;

use proc_macro::TokenStream;

/// Turns a function into a stream job binary: it generates the binary's
/// `main`, which parses the job's command-line arguments and runs the
/// function.
///
/// ```ignore
/// use flow_core::prelude::*;
///
/// #[derive(Args, Debug)]
/// struct WordCountArgs {
///     /// File to read.
///     #[arg(long)]
///     input: std::path::PathBuf,
/// }
///
/// /// Counts words.
/// #[stream_job]
/// fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> {
///     // build the dataflow on `env`
///     Ok(())
/// }
/// ```
///
/// The function must be a plain (not `async`, `const`, `unsafe` or `extern`),
/// non-generic function, not itself named `main`, taking exactly two
/// parameters:
///
/// 1. `&mut Env` (`flow_core::Env`), the environment the job builds its
///    dataflow on;
/// 2. the job's arguments, bound to an identifier, of a struct type deriving
///    `Args` (clap's, re-exported by the prelude);
///
/// and returning `flow_core::Result<()>`. All misuses are reported together,
/// each on the offending tokens.
///
/// # Arguments
///
/// - `name = "..."`: the job's name on the command line; defaults to the
///   function's name.
/// - `about = "..."`: the command line's about text; defaults to the
///   function's doc comments (each line trimmed), or nothing.
///
/// ```ignore
/// #[stream_job(name = "wc", about = "Counts words.")]
/// fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> {
///     Ok(())
/// }
/// ```
///
/// # Generated code
///
/// The function is kept unchanged, and this `main` is added (compiled out
/// under `cfg(test)`, where the test harness provides `main`; a test build
/// gets a use of the function instead, so it is not reported as dead code):
///
/// ```ignore
/// #[cfg(not(test))]
/// fn main() -> ::std::process::ExitCode {
///     ::flow_core::__private::job_main::<WordCountArgs, _>(
///         ::flow_core::__private::JobInfo { name: "word_count", about: "Counts words." },
///         word_count,
///     )
/// }
///
/// #[cfg(test)]
/// const _: () = {
///     let _ = word_count;
/// };
/// ```
///
/// Type errors in the generated code are reported on the function's own
/// tokens: an arguments type that does not implement `Args` on that type, a
/// return type other than `flow_core::Result<()>` on the return type.
///
/// A misused `#[stream_job]` keeps the function unchanged, reports every
/// problem, and adds a stub `main` (unless the function is itself named
/// `main`) so that no spurious "`main` function not found" error follows.
#[proc_macro_attribute]
pub fn stream_job(attr: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(attr.into(), item.into()).into()
}
