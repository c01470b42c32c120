//! Sources: files read in parallel chunks, in-memory collections, generators and sockets.
use crate::chain::OpName;
use crate::error::{Error, Result};
use crate::record::{Batch, NO_TIMESTAMP};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;
use std::fs::File;
use std::io::{BufRead, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a lenient source does with a record it cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnBadRecord {
    /// Fail the job with an error naming the file and line (the default).
    #[default]
    Fail,
    /// Skip the record, count it in the job's summary and log it as a warning.
    Skip,
}

/// A file cut into chunks of `chunk` bytes. Readers take the next chunk in file order, so the
/// parallel readers advance through the file together (which keeps event time aligned across
/// them), and each reads the lines that *start* inside its chunk.
///
/// Readers also stay close to each other: a reader may run at most [`MAX_AHEAD`] chunks ahead
/// of the slowest one, which may always go on. Without that bound, a reader that the
/// scheduler leaves waiting holds back the combined watermark while the others read on, and
/// every window of the chunks in between stays open.
pub(crate) struct FileChunks {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) chunk: u64,
    pub(crate) next: AtomicU64,
    /// The chunk each reader took last (`u64::MAX` once it ended).
    pub(crate) at: Vec<AtomicU64>,
    /// Readers waiting for the slowest one, by task id.
    pub(crate) waiting: Mutex<Vec<crate::runtime::task::TaskId>>,
}

/// How many chunks a reader may be ahead of the slowest reader.
pub(crate) const MAX_AHEAD: u64 = 4;

impl FileChunks {
    /// Whether reader `me` may take chunk `c` now.
    fn may_take(&self, me: usize, c: u64) -> bool {
        let min = self
            .at
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX);
        c <= min.saturating_add(MAX_AHEAD) || self.at[me].load(Ordering::SeqCst) == min
    }

    /// Records that reader `me` moved on to `c` and wakes the readers that waited.
    fn moved(&self, me: usize, c: u64, cx: &TaskCx<'_>) {
        self.at[me].store(c, Ordering::SeqCst);
        let ids = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            cx.notify(id);
        }
    }
}

impl FileChunks {
    pub(crate) fn open(path: &Path, chunk: u64, readers: usize) -> Result<Arc<Self>> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::other("is a directory, expected a file"),
            ));
        }
        // Open once here so that an unreadable file fails when the job is built.
        File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Arc::new(FileChunks {
            path: path.to_path_buf(),
            len: meta.len(),
            chunk: chunk.max(1),
            next: AtomicU64::new(0),
            at: (0..readers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            waiting: Mutex::new(Vec::new()),
        }))
    }
}

/// Counts the lines that end before byte `offset` of `path` (for error messages only).
fn lines_before(path: &Path, offset: u64) -> Result<u64> {
    let mut f = File::open(path)
        .map_err(|e| Error::io(path, e))?
        .take(offset);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            return Ok(n);
        }
        n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64;
    }
}

/// Turns one line of text into a record: `Ok(None)` drops the line, `Err` is a bad record.
pub(crate) type ParseLine<T> =
    Box<dyn FnMut(&str) -> std::result::Result<Option<T>, String> + Send>;

/// Reads the lines of the chunks it takes from a [`FileChunks`].
pub(crate) struct LineReader<T> {
    pub(crate) chunks: Arc<FileChunks>,
    /// This reader's index among the readers of `chunks`.
    pub(crate) index: usize,
    pub(crate) file: Option<File>,
    pub(crate) buf: Vec<u8>,
    pub(crate) parse: ParseLine<T>,
    pub(crate) on_bad: OnBadRecord,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) name: OpName,
}

impl<T> LineReader<T> {
    /// Reads bytes `[from, to)` and then on to the end of the line that holds byte `to - 1`.
    fn read_chunk(&mut self, from: u64, to: u64) -> Result<()> {
        let path = &self.chunks.path;
        if self.file.is_none() {
            self.file = Some(File::open(path).map_err(|e| Error::io(path, e))?);
        }
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        self.buf.clear();
        self.buf.resize((to - from) as usize, 0);
        file.read_exact_at(&mut self.buf, from)
            .map_err(|e| Error::io(path, e))?;
        let mut pos = to;
        while pos < self.chunks.len && self.buf.last() != Some(&b'\n') {
            let old = self.buf.len();
            self.buf.resize(old + 4096, 0);
            let k = file
                .read_at(&mut self.buf[old..], pos)
                .map_err(|e| Error::io(path, e))?;
            self.buf.truncate(old + k);
            if k == 0 {
                break;
            }
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[old..]) {
                self.buf.truncate(old + nl + 1);
                break;
            }
            pos += k as u64;
        }
        Ok(())
    }

    fn bad_line(&self, body_offset: u64, index: u64, what: BadLine) -> Result<()> {
        let line = lines_before(&self.chunks.path, body_offset)? + index + 1;
        let err = match what {
            BadLine::Utf8(column) => Error::Utf8 {
                path: self.chunks.path.clone(),
                line,
                column,
            },
            BadLine::Parse(message) => Error::Parse {
                path: self.chunks.path.clone(),
                line,
                message,
            },
        };
        match self.on_bad {
            OnBadRecord::Fail => Err(err),
            OnBadRecord::Skip => {
                self.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %self.name.as_str(), "skipped: {err}");
                Ok(())
            }
        }
    }
}

enum BadLine {
    Utf8(usize),
    Parse(String),
}

impl<T: Send> Input<T> for LineReader<T> {
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<T>) -> Result<Poll> {
        if cx.stop_requested() {
            return Ok(Poll::End);
        }
        let c = self.chunks.clone();
        let me = self.index.min(c.at.len() - 1);
        if !c.may_take(me, c.next.load(Ordering::SeqCst)) {
            c.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cx.id);
            // Check again after registering, so a reader that moved meanwhile is not missed.
            if !c.may_take(me, c.next.load(Ordering::SeqCst)) {
                return Ok(Poll::Pending);
            }
        }
        let i = c.next.fetch_add(1, Ordering::SeqCst);
        let start = i.saturating_mul(c.chunk);
        if start >= c.len {
            c.moved(me, u64::MAX, cx);
            return Ok(Poll::End);
        }
        c.moved(me, i, cx);
        let end = (start + c.chunk).min(c.len);
        let from = start.saturating_sub(1);
        self.read_chunk(from, end)?;
        let buf = std::mem::take(&mut self.buf);
        // Lines that start inside [start, end) are this chunk's: skip the tail of the line that
        // began in the previous chunk.
        let skip = if start == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &buf) {
                Some(p) => p + 1,
                None => buf.len(),
            }
        };
        let body = &buf[skip..];
        let body_offset = from + skip as u64;
        let fast = std::str::from_utf8(body).is_ok();
        let mut index = 0u64;
        let mut line_start = 0;
        let mut result = Ok(());
        let mut handle = |this: &mut Self, line: &[u8], index: u64| -> Result<()> {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = if fast {
                // SAFETY: `body` was validated as UTF-8 above and `line` is a sub-slice of it
                // that starts after a '\n' and ends before a '\n' or '\r', both ASCII, so it is
                // on character boundaries.
                unsafe { std::str::from_utf8_unchecked(line) }
            } else {
                match std::str::from_utf8(line) {
                    Ok(s) => s,
                    Err(e) => {
                        return this.bad_line(
                            body_offset,
                            index,
                            BadLine::Utf8(e.valid_up_to() + 1),
                        )
                    }
                }
            };
            match (this.parse)(text) {
                Ok(Some(x)) => out.push(x, NO_TIMESTAMP),
                Ok(None) => {}
                Err(m) => this.bad_line(body_offset, index, BadLine::Parse(m))?,
            }
            Ok(())
        };
        for nl in memchr::memchr_iter(b'\n', body) {
            if let Err(e) = handle(self, &body[line_start..nl], index) {
                result = Err(e);
                break;
            }
            index += 1;
            line_start = nl + 1;
        }
        if result.is_ok() && line_start < body.len() {
            // The file's last line has no line break.
            result = handle(self, &body[line_start..], index);
        }
        self.buf = buf;
        result?;
        self.metrics
            .bytes_read
            .fetch_add(end - start, Ordering::Relaxed);
        Ok(Poll::Data)
    }
}

/// Reads a single iterator (a non-parallel source).
pub(crate) struct IterInput<I> {
    pub(crate) iter: Option<I>,
    pub(crate) batch: usize,
}

impl<I> Input<I::Item> for IterInput<I>
where
    I: Iterator + Send,
    I::Item: Send,
{
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<I::Item>) -> Result<Poll> {
        let Some(it) = self.iter.as_mut() else {
            return Ok(Poll::End);
        };
        if cx.stop_requested() {
            self.iter = None;
            return Ok(Poll::End);
        }
        for x in it.by_ref().take(self.batch) {
            out.push(x, NO_TIMESTAMP);
        }
        if out.is_empty() {
            self.iter = None;
            return Ok(Poll::End);
        }
        Ok(Poll::Data)
    }
}

/// Shared position of a generator's parallel instances.
pub(crate) struct GeneratorRange {
    pub(crate) next: AtomicU64,
    pub(crate) limit: Option<u64>,
}

/// Generates record `f(i)` for every index `i`, taking index ranges in order.
pub(crate) struct GeneratorInput<F> {
    pub(crate) range: Arc<GeneratorRange>,
    pub(crate) f: F,
    pub(crate) batch: u64,
    pub(crate) name: OpName,
    pub(crate) pace: Option<Pace>,
}

/// Limits a generator subtask to `per_second` records per second of wall time. While it
/// waits, a ticker thread of its own (never a pool thread) wakes it every 10 ms.
pub(crate) struct Pace {
    pub(crate) per_second: f64,
    pub(crate) start: Option<std::time::Instant>,
    pub(crate) produced: u64,
    pub(crate) ticker: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Pace {
    /// How many records may be produced now.
    fn allowance(&mut self, cx: &TaskCx<'_>) -> u64 {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        let due = (start.elapsed().as_secs_f64() * self.per_second) as u64;
        let n = due.saturating_sub(self.produced);
        if n == 0 && self.ticker.is_none() {
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            self.ticker = Some(done.clone());
            let (shared, id) = (cx.shared.clone(), cx.id);
            let spawned = std::thread::Builder::new()
                .name("flow-pace".into())
                .spawn(move || {
                    while !done.load(Ordering::Relaxed) && !shared.stopping() {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        shared.notify(id);
                    }
                });
            if spawned.is_err() {
                // Without a ticker, do not wait: run unpaced rather than never wake.
                self.per_second = f64::INFINITY;
                return u64::MAX;
            }
        }
        n
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.store(true, Ordering::Relaxed);
        }
    }
}

impl<T, F> Input<T> for GeneratorInput<F>
where
    T: Send,
    F: FnMut(u64) -> T + Send,
{
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<T>) -> Result<Poll> {
        if cx.stop_requested() {
            return Ok(Poll::End);
        }
        let mut take = self.batch;
        if let Some(p) = self.pace.as_mut() {
            take = take.min(p.allowance(cx));
            if take == 0 {
                return Ok(Poll::Pending);
            }
            p.produced += take;
        }
        let from = self.range.next.fetch_add(take, Ordering::Relaxed);
        let to = match self.range.limit {
            Some(l) if from >= l => return Ok(Poll::End),
            Some(l) => (from + take).min(l),
            None => from.saturating_add(take),
        };
        out.data.reserve(self.batch as usize);
        let guard = crate::chain::PanicGuard(&self.name);
        for i in from..to {
            out.data.push((self.f)(i));
        }
        std::mem::forget(guard);
        Ok(Poll::Data)
    }
}

type LineBatch = std::result::Result<Vec<String>, Error>;

/// Reads lines from a TCP server on a thread of its own (I/O never blocks a pool worker).
pub(crate) struct SocketInput {
    pub(crate) address: String,
    pub(crate) rx: Option<crossbeam_channel::Receiver<LineBatch>>,
    pub(crate) done: bool,
}

impl SocketInput {
    fn start(&mut self, cx: &TaskCx<'_>) {
        let (tx, rx) = crossbeam_channel::bounded::<LineBatch>(16);
        self.rx = Some(rx);
        let shared = cx.shared.clone();
        let id = cx.id;
        let address = self.address.clone();
        let spawned = std::thread::Builder::new()
            .name("flow-socket".into())
            .spawn(move || {
                let net = |e| Error::Net {
                    address: address.clone(),
                    source: e,
                };
                let run = || -> Result<()> {
                    let stream = std::net::TcpStream::connect(&address).map_err(net)?;
                    stream
                        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
                        .map_err(net)?;
                    tracing::info!(%address, "socket source connected");
                    let mut r = std::io::BufReader::with_capacity(1 << 16, stream);
                    let mut batch = Vec::new();
                    let mut line = Vec::new();
                    let mut line_no = 0u64;
                    loop {
                        if shared.stopping() {
                            break;
                        }
                        match r.read_until(b'\n', &mut line) {
                            Ok(0) => break,
                            Ok(_) if line.last() != Some(&b'\n') => continue, // timed out mid-line
                            Ok(_) => {
                                line_no += 1;
                                let l = line.strip_suffix(b"\n").unwrap_or(&line);
                                let l = l.strip_suffix(b"\r").unwrap_or(l);
                                match String::from_utf8(l.to_vec()) {
                                    Ok(s) => batch.push(s),
                                    Err(e) => {
                                        return Err(Error::Parse {
                                            path: PathBuf::from(&address),
                                            line: line_no,
                                            message: format!(
                                                "line is not valid UTF-8 (byte {} of the line)",
                                                e.utf8_error().valid_up_to() + 1
                                            ),
                                        })
                                    }
                                }
                                line.clear();
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(e) => return Err(net(e)),
                        }
                        // Hand over what has arrived once nothing more is buffered.
                        if !batch.is_empty() && (r.buffer().is_empty() || batch.len() >= 1024) {
                            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                                return Ok(());
                            }
                            shared.notify(id);
                        }
                    }
                    if !batch.is_empty() {
                        let _ = tx.send(Ok(batch));
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    let _ = tx.send(Err(e));
                }
                drop(tx);
                shared.notify(id);
            });
        if let Err(e) = spawned {
            cx.shared.fail(Error::Config(format!(
                "cannot start the socket reader thread: {e}"
            )));
        }
    }
}

impl Input<String> for SocketInput {
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<String>) -> Result<Poll> {
        if self.done {
            return Ok(Poll::End);
        }
        if self.rx.is_none() {
            self.start(cx);
        }
        let Some(rx) = self.rx.as_ref() else {
            return Ok(Poll::End);
        };
        match rx.try_recv() {
            Ok(Ok(lines)) => {
                out.data = lines;
                Ok(Poll::Data)
            }
            Ok(Err(e)) => Err(e),
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(Poll::Pending),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.done = true;
                Ok(Poll::End)
            }
        }
    }
}

/// Collects records of a sink's subtasks for the caller of [`crate::Env::execute`].
pub(crate) type SharedVec<T> = Arc<Mutex<Vec<T>>>;
