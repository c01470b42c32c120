//! Procedural macros of flow.
//!
//! Use them through `flow_core` (`use flow_core::prelude::*;`), not directly:
//! the code they generate refers to `::flow_core`, and only to its hidden
//! `::flow_core::__private` module, which re-exports what that code needs
//! (so that `flow_core` can move its modules freely).
//!
//! Each macro is a folder (`job`, `process_fn`) of three stages: `parse`
//! (tokens to a typed model), `check` (every problem recorded in the error
//! context, so all are reported together) and `codegen` (the model to
//! tokens). The attribute argument parser (`attr`), the signature checks
//! (`sig`), the error context (`ctxt`) and other syntax helpers (`syntax`)
//! are shared.
//!
//! - [`macro@stream_job`] turns a function into the `main` of a job binary.
//! - [`macro@process_fn`] turns a function into a keyed process function
//!   (`flow_core::ops::process::keyed::KeyedProcessFunction`) with typed keyed state.

mod attr;
mod ctxt;
mod job;
mod process_fn;
mod sig;
mod syntax;
#[cfg(test)]
mod testing;

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

/// Turns a function into a keyed process function: a unit struct (or, with
/// `config = ...`, a struct holding the configuration) implementing
/// `flow_core::ops::process::keyed::KeyedProcessFunction` by calling the
/// function, with the function's keyed state parameters as its state.
///
/// ```ignore
/// use flow_core::prelude::*;
///
/// /// Flags a large transaction that follows a small one of the same account.
/// #[process_fn(on_timer = expire)]
/// fn detect_fraud(
///     account: &u64,
///     tx: Tx,
///     last_small: &mut ValueState<(i64, f64)>,
///     pending: &mut ListState<Tx>,
///     ctx: &mut Context<'_, Alert>,
/// ) {
///     // update the state, emit with `ctx.emit(..)`, register timers
/// }
///
/// /// Called when a timer of `account` fires, with the same state.
/// fn expire(
///     account: &u64,
///     timestamp: i64,
///     last_small: &mut ValueState<(i64, f64)>,
///     pending: &mut ListState<Tx>,
///     ctx: &mut Context<'_, Alert>,
/// ) {
///     last_small.clear();
/// }
///
/// // then: `stream.key_by(|tx| tx.account).process(DetectFraud)`
/// ```
///
/// The function must be a plain (not `async`, `const`, `unsafe` or `extern`),
/// non-generic function returning nothing, whose parameters are, in order:
///
/// 0. with `config = Type` only, the configuration: `cfg: &Type`;
/// 1. the key, by shared reference: `key: &K`;
/// 2. the record, by value: `item: T` (any pattern);
/// 3. zero or more keyed state parameters, each bound to a plain identifier:
///    `name: &mut ValueState<V>`, `&mut ListState<V>` or
///    `&mut MapState<MK, MV>` (`flow_core::ops::process::state`'s, also written as paths,
///    e.g. `&mut flow_core::ops::process::state::ValueState<V>`). The identifiers are the
///    state's stable names;
/// 4. the context: `ctx: &mut Context<'_, O>` (`flow_core::ops::process::keyed::Context`),
///    through which the function emits records of type `O` and registers
///    timers.
///
/// The key, record, state and output types cannot use lifetimes other than
/// `'static`, and the state and output types cannot elide any (they outlive
/// each call: use `&'static str` or `String`, not `&str`). All misuses are
/// reported together, each on the offending tokens.
///
/// # Arguments
///
/// - `on_timer = path`: the function called when a timer of a key fires. It
///   takes the key, the timer's timestamp, the same state parameters in the
///   same order, and the context:
///   `fn expire(key: &K, timestamp: i64, <state parameters>, ctx: &mut Context<'_, O>)`.
///   Without it, timers do nothing.
/// - `name = Ident`: the generated struct's name; defaults to the function's
///   name in UpperCamelCase (`detect_fraud` gives `DetectFraud`).
/// - `config = Type`: the function is configured, e.g. with a dedup interval
///   read from the command line. It then takes a first parameter
///   `cfg: &Type` (any pattern; a shared reference to that type, written as in
///   the attribute), before the key, and so does the `on_timer` function. The
///   generated struct holds the configuration: `pub struct Name(pub Type);`,
///   built with `Name::new(config)` or `Name(config)`, deriving only `Clone`;
///   each call is passed `&self.0`. The type must be `Clone + Send + 'static`
///   (a keyed process function's bounds; the compiler reports a type that is
///   not, on the function's name). Without `config`, a first parameter that
///   looks like one (a reference followed by the key, the record and no state
///   where the record should be) is reported as needing the attribute.
///
/// ```ignore
/// #[derive(Clone, Debug, Args)]
/// struct DedupConfig {
///     /// Event time during which a repeated id is dropped, in ms.
///     #[arg(long, default_value_t = 10_000)]
///     interval: i64,
/// }
///
/// /// Emits an id once per `cfg.interval` of event time.
/// #[process_fn(config = DedupConfig, on_timer = forget)]
/// fn dedup(
///     cfg: &DedupConfig,
///     id: &u64,
///     event: Event,
///     seen: &mut ValueState<i64>,
///     ctx: &mut Context<'_, Event>,
/// ) {
///     if seen.get().is_none() {
///         seen.set(ctx.timestamp());
///         ctx.register_event_time_timer(ctx.timestamp() + cfg.interval);
///         ctx.emit(event);
///     }
/// }
///
/// fn forget(cfg: &DedupConfig, id: &u64, timestamp: i64, seen: &mut ValueState<i64>,
///           ctx: &mut Context<'_, Event>) {
///     seen.clear();
/// }
///
/// // then: `stream.key_by(|e| e.id).process(Dedup::new(args.dedup))`
/// ```
///
/// # Generated code
///
/// The function is kept unchanged, and this is added, with the function's
/// visibility for the structs and their fields:
///
/// ```ignore
/// /// Keyed process function generated by `#[process_fn]` from `detect_fraud`.
/// #[derive(Clone, Copy, Debug, Default)]
/// pub struct DetectFraud;
///
/// /// Keyed state of [`DetectFraud`]: one field per state parameter of `detect_fraud`.
/// #[derive(Default)]
/// pub struct DetectFraudState {
///     pub last_small: ::flow_core::__private::ValueState<(i64, f64)>,
///     pub pending: ::flow_core::__private::ListState<Tx>,
/// }
///
/// impl ::flow_core::__private::KeyedStateNames for DetectFraudState {
///     const NAMES: &'static [&'static str] = &["last_small", "pending"];
/// }
///
/// impl ::flow_core::__private::KeyedProcessFunction<u64, Tx> for DetectFraud {
///     type State = DetectFraudState;
///     type Out = Alert;
///     fn process_element(&mut self, key: &u64, item: Tx, state: &mut DetectFraudState,
///                        ctx: &mut ::flow_core::__private::Context<'_, Alert>) {
///         detect_fraud(key, item, &mut state.last_small, &mut state.pending, ctx)
///     }
///     // only with `on_timer = expire`:
///     fn on_timer(&mut self, key: &u64, timestamp: ::flow_core::__private::Timestamp,
///                 state: &mut DetectFraudState,
///                 ctx: &mut ::flow_core::__private::Context<'_, Alert>) {
///         expire(key, timestamp, &mut state.last_small, &mut state.pending, ctx)
///     }
/// }
/// ```
///
/// With `config = DedupConfig`, the struct holds the configuration instead,
/// and the calls pass it first:
///
/// ```ignore
/// /// Keyed process function generated by `#[process_fn]` from `dedup`.
/// #[derive(Clone)]
/// pub struct Dedup(pub DedupConfig);
///
/// impl Dedup {
///     pub fn new(config: DedupConfig) -> Self { Self(config) }
/// }
///
/// // in `process_element`:  dedup(&self.0, key, item, &mut state.seen, ctx)
/// // in `on_timer`:         forget(&self.0, key, timestamp, &mut state.seen, ctx)
/// ```
///
/// Type errors in the generated code are reported on the user's tokens: a
/// timer function whose parameters do not match on its path in the
/// attribute, an output type that is not `Send` on that type, a state type
/// that is not `Send` on the function's name.
///
/// A misused `#[process_fn]` keeps the function unchanged, reports every
/// problem, and adds a stand-in struct of the same name (when the name is
/// known; holding the configuration, with its `new`, when `config` is given),
/// implementing `KeyedProcessFunction` with no state when the key,
/// record and output types are known, so that uses of the struct add no
/// errors of their own.
#[proc_macro_attribute]
pub fn process_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    process_fn::expand(attr.into(), item.into()).into()
}
