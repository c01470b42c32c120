//! Fraud detection, the Flink tutorial's use case: per account, alert when a small
//! transaction (under 1.00) is followed by a large one (over 500.00) within one minute of
//! event time. Keyed state holds the pending small transaction; an event-time timer expires
//! it after a minute.
//!
//! ```text
//! cargo run --release --example fraud_detection                      # generated transactions
//! cargo run --release --example fraud_detection -- --input tx.csv --output alerts/
//! ```
use flow_core::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of the fraud detection job.
#[derive(Args, Debug)]
struct FraudArgs {
    /// CSV of `account,timestamp_ms,amount` transactions. Without it, transactions are generated
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Directory for CSV part files of alerts `account,small_ts,small_amount,large_ts,large_amount`.
    /// Without it, the alerts are printed
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Transactions to generate (when no --input is given)
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    transactions: u64,
}

/// A transaction: account, event time (ms), amount.
type Tx = (u64, i64, f64);
/// An alert: the account, and the time and amount of the small and the large transaction.
/// Written as CSV with a header row (`--output`).
#[derive(Clone, Debug, serde::Serialize)]
struct Alert {
    account: u64,
    small_at: i64,
    small_amount: f64,
    large_at: i64,
    large_amount: f64,
}

const SMALL: f64 = 1.00;
const LARGE: f64 = 500.00;
const ONE_MINUTE: i64 = 60_000;

/// The detector's state per account (serde: checkpoints persist it).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct AccountState {
    /// Transactions not yet examined, by event time. Records of one account can arrive out
    /// of order (from different source splits); examining them only once the watermark has
    /// passed them, in timestamp order, makes the alerts independent of arrival order.
    buffered: BTreeMap<i64, Vec<f64>>,
    /// The last small transaction, while a large one may still follow it.
    small: Option<(i64, f64)>,
}

#[derive(Clone)]
struct FraudDetector;

impl FraudDetector {
    /// Examines one transaction, in event-time order.
    fn examine(
        account: u64,
        ts: i64,
        amount: f64,
        st: &mut AccountState,
        ctx: &mut Context<'_, Alert>,
    ) {
        if let Some((small_ts, small_amount)) = st.small.take() {
            if amount > LARGE && ts - small_ts <= ONE_MINUTE {
                ctx.emit(Alert {
                    account,
                    small_at: small_ts,
                    small_amount,
                    large_at: ts,
                    large_amount: amount,
                });
            }
            // Any later transaction ends the pattern; its expiry timer is no longer needed.
            ctx.delete_event_time_timer(small_ts + ONE_MINUTE);
        }
        if amount < SMALL {
            st.small = Some((ts, amount));
            ctx.register_event_time_timer(ts + ONE_MINUTE);
        }
    }
}

impl KeyedProcessFunction<u64, Tx> for FraudDetector {
    type State = AccountState;
    type Out = Alert;

    fn process_element(
        &mut self,
        _account: &u64,
        tx: Tx,
        st: &mut AccountState,
        ctx: &mut Context<'_, Alert>,
    ) {
        st.buffered.entry(tx.1).or_default().push(tx.2);
        ctx.register_event_time_timer(tx.1);
    }

    fn on_timer(
        &mut self,
        account: &u64,
        ts: i64,
        st: &mut AccountState,
        ctx: &mut Context<'_, Alert>,
    ) {
        while let Some(entry) = st.buffered.first_entry() {
            if *entry.key() > ts {
                break;
            }
            let (t, mut amounts) = entry.remove_entry();
            amounts.sort_by(f64::total_cmp); // ties in time: a fixed order
            for amount in amounts {
                Self::examine(*account, t, amount, st, ctx);
            }
        }
        if st
            .small
            .is_some_and(|(small_ts, _)| small_ts + ONE_MINUTE <= ts)
        {
            st.small = None; // a minute passed without a large transaction
        }
        if st.small.is_none() && st.buffered.is_empty() {
            ctx.clear_state();
        }
    }
}

/// Flags accounts where a tiny transaction is followed by a large one within a minute.
#[stream_job]
fn fraud_detection(env: &mut Env, args: FraudArgs) -> flow_core::Result<()> {
    let alerts = match &args.input {
        Some(path) => detect(env.read_csv::<Tx>(path, ReadOptions::default())?),
        None => detect(env.generate_n(args.transactions, transaction)),
    };
    let collected = match &args.output {
        Some(dir) => {
            alerts.write_csv_serde(dir, WriteOptions::default().with_header())?;
            None
        }
        None => Some(alerts.collect()),
    };
    let summary = env.execute()?;
    if summary.planned_only {
        return Ok(());
    }
    if let Some(c) = collected {
        let mut alerts = c.take();
        alerts.sort_by(|a, b| a.large_at.cmp(&b.large_at).then(a.account.cmp(&b.account)));
        for a in alerts.iter().take(10) {
            println!(
                "ALERT account {}: {:.2} at {} then {:.2} at {}",
                a.account, a.small_amount, a.small_at, a.large_amount, a.large_at
            );
        }
        println!(
            "{} alerts from {} transactions",
            alerts.len(),
            summary.records_read()
        );
    } else {
        println!(
            "{} alerts from {} transactions",
            summary.records_written(),
            summary.records_read()
        );
    }
    Ok(())
}

fn detect(txs: Stream<impl Chain<Out = Tx>>) -> Stream<impl Chain<Out = Alert>> {
    txs.assign_timestamps(|t| t.1, WatermarkStrategy::monotonous())
        .key_by(|t| t.0)
        .process(FraudDetector)
}

/// Transaction `i`: 1,000 accounts, one transaction every 50 ms; now and then an account
/// makes a tiny transaction and, sometimes within the minute, a large one.
fn transaction(i: u64) -> Tx {
    let mut r = flow_examples::SplitMix::for_index(i, 0x5EED);
    let mut next = move || r.next_u64();
    let account = next() % 1000;
    let r = next() % 1000;
    let amount = match r {
        0..=9 => (next() % 100) as f64 / 100.0, // tiny: 0.00 - 0.99
        10..=29 => 500.0 + (next() % 100_000) as f64 / 100.0, // large
        _ => 1.0 + (next() % 30_000) as f64 / 100.0,
    };
    (account, 1_700_000_000_000 + 50 * i as i64, amount)
}
