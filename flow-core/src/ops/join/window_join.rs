//! Window joins: the records of two keyed streams with equal keys that fall into the same
//! window, paired (Flink's window join).
use super::connect::Either;
use crate::api::stream::{KeyedStream, Stream};
use crate::ops::window::functions::ProcessWindow;
use crate::ops::window::{WindowInfo, WindowSpec, WindowedStream};
use crate::ops::{StateKey, StateValue};
use crate::runtime::operator::Chain;
use crate::runtime::panic::OpName;
use crate::runtime::snapshot::{encode, Codec};
use std::hash::Hash;

/// The codec of one record of either side, encoded as a `Result` (`Ok`: left, `Err`: right).
fn item_codec<A: StateValue, B: StateValue>() -> Codec<Either<A, B>> {
    Codec {
        enc: |item, out| {
            let side: Result<&A, &B> = match item {
                Either::Left(a) => Ok(a),
                Either::Right(b) => Err(b),
            };
            encode(&side, out)
        },
        dec: |bytes| {
            let (side, rest): (Result<A, B>, _) =
                postcard::take_from_bytes(bytes).map_err(|e| {
                    crate::Error::Checkpoint(format!(
                        "cannot decode a record of a window join: {e}"
                    ))
                })?;
            let item = match side {
                Ok(a) => Either::Left(a),
                Err(b) => Either::Right(b),
            };
            Ok((item, rest))
        },
    }
}

/// The codec of a window join's buffered records: both sides' records, in arrival order,
/// encoded as a sequence of `Result`s (`Ok`: left, `Err`: right).
fn items_codec<A: StateValue, B: StateValue>() -> Codec<Vec<Either<A, B>>> {
    Codec {
        enc: |items, out| {
            let sides: Vec<Result<&A, &B>> = items
                .iter()
                .map(|x| match x {
                    Either::Left(a) => Ok(a),
                    Either::Right(b) => Err(b),
                })
                .collect();
            encode(&sides, out)
        },
        dec: |bytes| {
            let (sides, rest): (Vec<Result<A, B>>, _) =
                postcard::take_from_bytes(bytes).map_err(|e| {
                    crate::Error::Checkpoint(format!(
                        "cannot decode the records of a window join: {e}"
                    ))
                })?;
            let items = sides
                .into_iter()
                .map(|x| match x {
                    Ok(a) => Either::Left(a),
                    Err(b) => Either::Right(b),
                })
                .collect();
            Ok((items, rest))
        },
    }
}

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Joins the records of both streams with equal keys that fall into the same window
    /// (Flink's window join): `f` runs for every pair of the window's left and right records.
    ///
    /// With checkpoints, the windows' buffered records are checkpointed per key: keys and
    /// both sides' records need serde's traits.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let views = env
    ///     .from_iter([('x', 100), ('x', 1_200)])
    ///     .assign_timestamps(|v| v.1, WatermarkStrategy::monotonous())
    ///     .key_by(|v| v.0);
    /// let clicks = env
    ///     .from_iter([('x', 300)])
    ///     .assign_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///     .key_by(|c| c.0);
    /// let second = TumblingEventTimeWindows::of(Duration::from_secs(1));
    /// let pairs = views.window_join(clicks, second, |ad, v, c| (*ad, v.1, c.1)).collect();
    /// env.execute()?;
    /// // the view at 1_200 falls into the next window, which has no click
    /// assert_eq!(pairs.take(), vec![('x', 100, 300)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn window_join<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        spec: impl Into<WindowSpec>,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        K: StateKey,
        C::Out: StateValue,
        C2: Chain,
        C2::Out: StateValue,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        let connected = self.connect(other);
        let windowed = WindowedStream::from_exchange(connected.ex, spec.into());
        let mut f = f;
        let name = OpName::new("window_join", std::panic::Location::caller());
        let join = move |k: &K, _info: &WindowInfo, items: Vec<Either<C::Out, C2::Out>>| {
            let (mut lefts, mut rights) = (Vec::new(), Vec::new());
            for x in items {
                match x {
                    Either::Left(a) => lefts.push(a),
                    Either::Right(b) => rights.push(b),
                }
            }
            let mut out = Vec::with_capacity(lefts.len() * rights.len());
            for a in &lefts {
                for b in &rights {
                    out.push(f(k, a, b));
                }
            }
            out
        };
        windowed.apply(
            "window_join",
            ProcessWindow { f: join, name },
            Some((Codec::serde(), items_codec())),
            Some(item_codec()),
        )
    }
}
