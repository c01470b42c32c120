//! Files read in parallel chunks: `read_lines` and `read_csv`.
//!
//! With checkpoints, a job restored from a checkpoint reads exactly the records the
//! checkpoint had not read, at any parallelism.
use super::position::{decode_blob, encode_blob, union_of, Cursor, Progress, Resume, Todo};
use super::{OnBadRecord, ReadOptions};
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::io::csv::FromCsv;
use crate::record::{Batch, NO_TIMESTAMP};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::Identity;
use crate::runtime::panic::OpName;
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::{TaskCx, TaskId};
use parking_lot::Mutex;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The kind byte of a file reader's position blob.
///
/// A reader's position is the set of chunks it emitted (see `super::position`): a reader
/// reads whole chunks, each as one batch, so at a barrier it has emitted every chunk it took
/// (except one it holds back while it waits for the quote parity of the chunks before it,
/// which it has not emitted and does not record). Blob header: the file's length and the
/// chunk size, both `u64`; the marks are the chunks with an odd number of `"` bytes (CSV
/// only), so that a restored reader knows whether a chunk starts inside quotes without
/// reading the chunks before it again.
const KIND: u8 = b'f';

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
    /// The next chunk to hand out; after a restore, its position among the chunks not read.
    pub(crate) next: AtomicU64,
    /// The chunk each reader took last (`u64::MAX` once it ended).
    pub(crate) at: Vec<AtomicU64>,
    /// Readers waiting for the slowest one, by task id.
    pub(crate) waiting: Mutex<Vec<TaskId>>,
    /// For CSV: which chunks start inside a quoted field.
    pub(crate) quotes: Option<QuoteParity>,
    /// The chunks the readers emitted, for checkpoints.
    pub(crate) progress: Progress,
    /// After a restore: the chunks the checkpoint had not read yet.
    pub(crate) resume: OnceLock<Resume>,
}

/// Whether each chunk of a CSV file starts inside a quoted field, so that a reader can find
/// the first record that starts in its chunk although quoted fields may hold line breaks.
///
/// The parity of the number of `"` bytes before a position says whether it is inside quotes.
/// Each reader counts the quotes of its own chunk right after reading it and publishes the
/// count's parity before it waits for anything, so the prefix parity of chunk `i` is known as
/// soon as every earlier chunk has been read; no reader waits on one that waits.
pub(crate) struct QuoteParity {
    /// Per chunk: 0 not yet counted, 1 an even number of quotes, 2 an odd number.
    counts: Vec<std::sync::atomic::AtomicU8>,
    /// Per chunk, once known: 1 if an even number of quotes precedes it, 2 if odd.
    before: Vec<std::sync::atomic::AtomicU8>,
    /// The first chunk whose prefix parity is not known yet, and the parity before it.
    folded: Mutex<(usize, bool)>,
    /// Readers waiting for a prefix parity, by task id.
    waiting: Mutex<Vec<TaskId>>,
}

impl QuoteParity {
    fn new(chunks: usize) -> Self {
        let zeros = || {
            (0..chunks)
                .map(|_| std::sync::atomic::AtomicU8::new(0))
                .collect()
        };
        QuoteParity {
            counts: zeros(),
            before: zeros(),
            folded: Mutex::new((0, false)),
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// Records the parity of chunk `i`'s quotes, read before a restore: nobody waits yet.
    fn preset(&self, i: u64, odd: bool) {
        if let Some(c) = usize::try_from(i).ok().and_then(|i| self.counts.get(i)) {
            c.store(1 + odd as u8, Ordering::Release);
        }
    }

    /// Records the parity of chunk `i`'s quotes and wakes the readers that wait.
    fn publish(&self, i: usize, odd: bool, cx: &TaskCx<'_>) {
        if let Some(c) = self.counts.get(i) {
            c.store(1 + odd as u8, Ordering::Release);
        }
        let ids = std::mem::take(&mut *self.waiting.lock());
        for id in ids {
            cx.notify(id);
        }
    }

    /// Whether an odd number of quotes precedes chunk `i`, once every earlier chunk has been
    /// counted.
    fn odd_before(&self, i: usize) -> Option<bool> {
        match self.before.get(i).map(|b| b.load(Ordering::Acquire)) {
            Some(1) => return Some(false),
            Some(2) => return Some(true),
            _ => {}
        }
        let mut f = self.folded.lock();
        while f.0 <= i {
            self.before[f.0].store(1 + f.1 as u8, Ordering::Release);
            if f.0 == i {
                return Some(f.1);
            }
            match self.counts[f.0].load(Ordering::Acquire) {
                0 => return None,
                c => f.1 ^= c == 2,
            }
            f.0 += 1;
        }
        Some(self.before[i].load(Ordering::Acquire) == 2)
    }

    /// [`QuoteParity::odd_before`], registering task `id` to be woken if it is not known yet.
    fn odd_before_or_wait(&self, i: usize, id: TaskId) -> Option<bool> {
        if let Some(odd) = self.odd_before(i) {
            return Some(odd);
        }
        self.waiting.lock().push(id);
        // Check again after registering, so a count published meanwhile is not missed.
        self.odd_before(i)
    }
}

/// How many chunks a reader may be ahead of the slowest reader.
pub(crate) const MAX_AHEAD: u64 = 4;

impl FileChunks {
    /// The number of chunks.
    fn n_chunks(&self) -> u64 {
        self.len.div_ceil(self.chunk)
    }

    /// The chunk handed out at position `k` of `next`: `k` itself, or after a restore the
    /// `k`-th chunk not read yet. Past the last chunk, a chunk past the end of the file.
    fn chunk_at(&self, k: u64) -> u64 {
        match self.resume.get() {
            None => k,
            Some(r) => r.todo.nth(k).unwrap_or_else(|| self.n_chunks()),
        }
    }

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
        let ids = std::mem::take(&mut *self.waiting.lock());
        for id in ids {
            cx.notify(id);
        }
    }
}

impl FileChunks {
    /// Opens `path` for `readers` readers taking `chunk` bytes at a time; `csv` tracks quoted
    /// fields across chunks.
    pub(crate) fn open(path: &Path, chunk: u64, readers: usize, csv: bool) -> Result<Arc<Self>> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::other("is a directory, expected a file"),
            ));
        }
        // Open once here so that an unreadable file fails when the job is built.
        File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::new(path, meta.len(), chunk, readers, csv))
    }

    /// The chunks of a file that is not opened (the job only prints its plan).
    pub(crate) fn unopened(path: &Path, chunk: u64, readers: usize, csv: bool) -> Arc<Self> {
        Self::new(path, 0, chunk, readers, csv)
    }

    fn new(path: &Path, len: u64, chunk: u64, readers: usize, csv: bool) -> Arc<Self> {
        let chunk = chunk.max(1);
        let n_chunks = len.div_ceil(chunk) as usize;
        Arc::new(FileChunks {
            quotes: csv.then(|| QuoteParity::new(n_chunks)),
            path: path.to_path_buf(),
            len,
            chunk,
            next: AtomicU64::new(0),
            at: (0..readers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            waiting: Mutex::new(Vec::new()),
            progress: Progress::new(readers),
            resume: OnceLock::new(),
        })
    }
}

/// Counts the lines that end before byte `to` of `path`, starting from a position already
/// counted (`from`, with `lines` lines before it). For error messages only.
fn count_lines(path: &Path, from: u64, lines: u64, to: u64) -> Result<u64> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| Error::io(path, e))?;
    let mut f = f.take(to.saturating_sub(from));
    let mut buf = vec![0u8; 1 << 16];
    let mut n = lines;
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

/// Turns the fields of one CSV record into a record: `Err` is a bad record.
pub(crate) type ParseFields<T> = Box<dyn FnMut(&[&str]) -> std::result::Result<T, String> + Send>;

/// The parsers of a file source: the line parser, and the CSV framing for CSV files.
pub(crate) type Parsers<T> = (ParseLine<T>, Option<CsvFraming<T>>);

/// What a CSV reader keeps between records: csv-core's parser and its output buffers.
pub(crate) struct CsvFraming<T> {
    parse: ParseFields<T>,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl<T> CsvFraming<T> {
    pub(crate) fn new(parse: ParseFields<T>) -> Self {
        CsvFraming {
            parse,
            out: vec![0; 4096],
            ends: vec![0; 64],
        }
    }
}

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
    /// A byte offset whose line number is known: `(offset, lines before it)`. Readers take
    /// chunks in file order, so counting on from here reads each byte at most once.
    pub(crate) counted: (u64, u64),
    /// For CSV: the quote-aware parser (records may span lines inside quoted fields).
    pub(crate) csv: Option<CsvFraming<T>>,
    /// A chunk read and counted whose quote parity is not known yet.
    pub(crate) pending: Option<Taken>,
    /// The file's first record is a header: the reader of chunk 0 skips it.
    pub(crate) skip_header: bool,
    /// The chunks this reader emitted, for checkpoints.
    pub(crate) cursor: Cursor,
}

/// A chunk a reader took: its index, its bytes `[start, end)`, and (CSV) whether it holds an
/// odd number of quotes.
#[derive(Clone, Copy)]
pub(crate) struct Taken {
    i: u64,
    start: u64,
    end: u64,
    odd: bool,
}

/// The parsers of `read_csv`.
fn csv_parser<T: FromCsv + Send + 'static>() -> Parsers<T> {
    let mut scratch = Vec::new();
    let lines: ParseLine<T> = Box::new(move |l: &str| {
        if l.is_empty() {
            return Ok(None);
        }
        crate::io::csv::parse_row(l, &mut scratch).map(Some)
    });
    let fields: ParseFields<T> = Box::new(|f: &[&str]| T::from_fields(f));
    (lines, Some(CsvFraming::new(fields)))
}

impl<T> LineReader<T> {
    /// Reader `index` of `chunks`, parsing with `parser` (the line parser, and the CSV framing
    /// for CSV files).
    pub(crate) fn new(
        chunks: Arc<FileChunks>,
        index: usize,
        parser: Parsers<T>,
        options: ReadOptions,
        metrics: Arc<StageMetrics>,
        name: OpName,
    ) -> Self {
        let (parse, csv) = parser;
        LineReader {
            cursor: chunks.progress.cursor(index),
            chunks,
            index,
            file: None,
            buf: Vec::new(),
            parse,
            csv,
            pending: None,
            on_bad: options.on_bad_record,
            metrics,
            name,
            counted: (0, 0),
            skip_header: options.header,
        }
    }

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

    fn bad_line(&mut self, body_offset: u64, index: u64, what: BadLine) -> Result<()> {
        let (from, lines) = self.counted;
        let before = if body_offset >= from {
            count_lines(&self.chunks.path, from, lines, body_offset)?
        } else {
            count_lines(&self.chunks.path, 0, 0, body_offset)?
        };
        self.counted = (body_offset, before);
        let line = before + index + 1;
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

impl<T: Send> LineReader<T> {
    /// Takes the next chunk and reads it: `Ok(None)` when the reader has to wait for a slower
    /// one, `Ok(Some(None))` at the end of the file.
    fn take_chunk(&mut self, cx: &TaskCx<'_>) -> Result<Option<Option<Taken>>> {
        let c = self.chunks.clone();
        let me = self.index.min(c.at.len() - 1);
        if !c.may_take(me, c.chunk_at(c.next.load(Ordering::SeqCst))) {
            c.waiting.lock().push(cx.id);
            // Check again after registering, so a reader that moved meanwhile is not missed.
            if !c.may_take(me, c.chunk_at(c.next.load(Ordering::SeqCst))) {
                return Ok(None);
            }
        }
        let i = c.chunk_at(c.next.fetch_add(1, Ordering::SeqCst));
        let start = i.saturating_mul(c.chunk);
        if start >= c.len {
            c.moved(me, u64::MAX, cx);
            return Ok(Some(None));
        }
        c.moved(me, i, cx);
        let end = (start + c.chunk).min(c.len);
        self.read_chunk(start.saturating_sub(1), end)?;
        let mut odd = false;
        if let Some(q) = &c.quotes {
            // Publish before waiting for anything (see `QuoteParity`).
            let own = &self.buf[(start - start.saturating_sub(1)) as usize
                ..(end - start.saturating_sub(1)) as usize];
            odd = memchr::memchr_iter(b'"', own).count() % 2 == 1;
            q.publish(i as usize, odd, cx);
        }
        Ok(Some(Some(Taken { i, start, end, odd })))
    }

    /// Parses the lines of the chunk `[start, end)` in `self.buf` (which begins at `start - 1`):
    /// the lines that start inside the chunk.
    fn parse_lines(&mut self, start: u64, out: &mut Batch<T>) -> Result<()> {
        let from = start.saturating_sub(1);
        let buf = std::mem::take(&mut self.buf);
        // Lines that start inside [start, end) are this chunk's: skip the tail of the line that
        // began in the previous chunk.
        let skip = if start == 0 {
            if self.skip_header {
                // The header: the first line (for CSV, after any blank lines, as in
                // `parse_csv`; a header with quotes is read there).
                let mut at = 0;
                if self.csv.is_some() {
                    while matches!(buf.get(at), Some(b'\n' | b'\r')) {
                        at += 1;
                    }
                }
                match memchr::memchr(b'\n', &buf[at..]) {
                    Some(p) => at + p + 1,
                    None => buf.len(),
                }
            } else {
                0
            }
        } else {
            match memchr::memchr(b'\n', &buf) {
                Some(p) => p + 1,
                None => buf.len(),
            }
        };
        let body = &buf[skip..];
        let body_offset = from + skip as u64;
        let valid = std::str::from_utf8(body).ok();
        let mut index = 0u64;
        let mut line_start = 0;
        let mut result = Ok(());
        let mut handle = |this: &mut Self, line: &[u8], index: u64| -> Result<()> {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = if let Some(body) = valid {
                // `body` was validated as UTF-8 above and `line` lies within it, between ASCII
                // line breaks, so these are character boundaries and slicing cannot fail.
                let from = line.as_ptr() as usize - body.as_ptr() as usize;
                &body[from..from + line.len()]
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
        result
    }

    /// Parses the CSV records that start inside the chunk `[start, end)`, whose start is
    /// inside quotes if `odd`, reading on past `end` until the last record is complete.
    fn parse_csv(&mut self, start: u64, end: u64, odd: bool, out: &mut Batch<T>) -> Result<()> {
        let from = start.saturating_sub(1);
        let Some(mut csv) = self.csv.take() else {
            return Ok(());
        };
        let mut buf = std::mem::take(&mut self.buf);
        // The first record boundary at or after `start`: a line break outside quotes.
        let mut body = 0;
        if start > 0 {
            let mut inside = odd ^ (buf[0] == b'"');
            body = buf.len();
            for (x, &b) in buf.iter().enumerate() {
                if b == b'\n' && !inside {
                    body = x + 1;
                    break;
                }
                inside ^= b == b'"';
            }
        }
        let body_offset = from + body as u64;
        let mut rdr = csv_core::Reader::new();
        let mut at = body;
        let mut result = Ok(());
        let mut header = start == 0 && self.skip_header;
        'records: loop {
            // Blank lines between records belong to no record.
            while matches!(buf.get(at), Some(b'\n' | b'\r')) {
                at += 1;
            }
            if from + at as u64 >= end || at >= buf.len() && from + at as u64 >= self.chunks.len {
                break;
            }
            let record_at = at;
            let (mut nout, mut nend) = (0, 0);
            loop {
                // An empty input means the end of the data to csv-core: give it one only at
                // the end of the file.
                if at >= buf.len() && !self.read_more(&mut buf, from)? {
                    let (res, _, _, e) =
                        rdr.read_record(&[], &mut csv.out[nout..], &mut csv.ends[nend..]);
                    nend += e;
                    if res == csv_core::ReadRecordResult::Record {
                        break;
                    }
                    break 'records;
                }
                let (res, nin, o, e) =
                    rdr.read_record(&buf[at..], &mut csv.out[nout..], &mut csv.ends[nend..]);
                at += nin;
                nout += o;
                nend += e;
                match res {
                    csv_core::ReadRecordResult::InputEmpty => {}
                    csv_core::ReadRecordResult::OutputFull => {
                        let n = csv.out.len();
                        csv.out.resize(n * 2, 0);
                    }
                    csv_core::ReadRecordResult::OutputEndsFull => {
                        let n = csv.ends.len();
                        csv.ends.resize(n * 2, 0);
                    }
                    csv_core::ReadRecordResult::Record => break,
                    csv_core::ReadRecordResult::End => break 'records,
                }
            }
            if std::mem::take(&mut header) {
                continue;
            }
            let index = memchr::memchr_iter(b'\n', &buf[body..record_at]).count() as u64;
            let mut fields: Vec<&str> = Vec::with_capacity(nend);
            let mut prev = 0;
            let mut bad = None;
            for &e in &csv.ends[..nend] {
                match std::str::from_utf8(&csv.out[prev..e]) {
                    Ok(f) => fields.push(f),
                    Err(err) => {
                        bad = Some(BadLine::Utf8(prev + err.valid_up_to() + 1));
                        break;
                    }
                }
                prev = e;
            }
            let r = match bad {
                Some(b) => Err(b),
                None => (csv.parse)(&fields).map_err(BadLine::Parse),
            };
            drop(fields);
            match r {
                Ok(x) => out.push(x, NO_TIMESTAMP),
                Err(b) => {
                    if let Err(e) = self.bad_line(body_offset, index, b) {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        self.buf = buf;
        self.csv = Some(csv);
        result
    }

    /// Appends the next 64 KiB of the file after `buf` (which begins at byte `from`); false at
    /// the end of the file.
    fn read_more(&mut self, buf: &mut Vec<u8>, from: u64) -> Result<bool> {
        let path = &self.chunks.path;
        let Some(file) = self.file.as_ref() else {
            return Ok(false);
        };
        let old = buf.len();
        buf.resize(old + (1 << 16), 0);
        let k = file
            .read_at(&mut buf[old..], from + old as u64)
            .map_err(|e| Error::io(path, e))?;
        buf.truncate(old + k);
        Ok(k > 0)
    }
}

impl<T: Send> Input<T> for LineReader<T> {
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<T>) -> Result<Poll> {
        if cx.stop_requested() {
            self.cursor.ended = true;
            return Ok(Poll::End);
        }
        let taken = match self.pending.take() {
            Some(p) => p,
            None => match self.take_chunk(cx)? {
                None => return Ok(Poll::Pending),
                Some(None) => {
                    self.cursor.ended = true;
                    return Ok(Poll::End);
                }
                Some(Some(p)) => p,
            },
        };
        let Taken { i, start, end, .. } = taken;
        match &self.chunks.quotes {
            None => self.parse_lines(start, out)?,
            Some(q) => {
                let Some(odd) = q.odd_before_or_wait(i as usize, cx.id) else {
                    self.pending = Some(taken);
                    return Ok(Poll::Pending);
                };
                // Without quotes anywhere near, every line break ends a record: the line path.
                let own = &self.buf[(start - start.saturating_sub(1)) as usize..];
                if !odd && memchr::memchr(b'"', own).is_none() {
                    self.parse_lines(start, out)?
                } else {
                    self.parse_csv(start, end, odd, out)?
                }
            }
        }
        if cx.checkpoints().writer().is_some() {
            // Emitted: the records go downstream before the next barrier.
            self.chunks
                .progress
                .record(&mut self.cursor, i, i + 1, taken.odd);
        }
        self.metrics
            .subtask(self.index)
            .bytes_read
            .fetch_add(end - start, Ordering::Relaxed);
        Ok(Poll::Data)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let c = &self.chunks;
        let done = c.progress.snapshot(&mut self.cursor);
        Ok(Some(encode_blob(KIND, &(c.len, c.chunk), &done)?))
    }

    fn restore(&mut self, positions: &[&[u8]]) -> Result<()> {
        let c = self.chunks.clone();
        let path = c.path.display();
        let source = format!("{}({path})", self.name.kind());
        let done = union_of(positions, |blob| {
            let ((len, chunk), done): ((u64, u64), _) = decode_blob(KIND, blob, &source)?;
            if len != c.len {
                return Err(Error::Checkpoint(format!(
                    "{source}: input changed since the checkpoint: {path} is {} bytes long, \
                     the checkpoint read {len} bytes",
                    c.len
                )));
            }
            if chunk != c.chunk {
                return Err(Error::Checkpoint(format!(
                    "{source}: the checkpoint read {path} in chunks of {chunk} bytes, this \
                     job reads chunks of {} bytes: restore with the same chunk size",
                    c.chunk
                )));
            }
            Ok(done)
        })?;
        if done.set.end() > c.n_chunks() || done.marks.end() > done.set.end() {
            return Err(Error::Checkpoint(format!(
                "{source}: the checkpoint's position names chunks past the end of {path}"
            )));
        }
        // Every subtask restores the same positions: the first one installs them.
        let resume = c.resume.get_or_init(|| {
            if let Some(q) = &c.quotes {
                // The chunks read before are not read again: their parities come from the
                // checkpoint.
                for &(s, e) in done.set.ranges() {
                    for i in s..e {
                        q.preset(i, false);
                    }
                }
                for &(s, e) in done.marks.ranges() {
                    for i in s..e {
                        q.preset(i, true);
                    }
                }
            }
            let read: u64 = done
                .set
                .ranges()
                .iter()
                .map(|&(s, e)| {
                    let to = e.saturating_mul(c.chunk).min(c.len);
                    to.saturating_sub(s.saturating_mul(c.chunk))
                })
                .sum();
            // The progress line counts what this run reads.
            self.metrics
                .bytes_total
                .store(c.len.saturating_sub(read), Ordering::Relaxed);
            let done = Arc::new(done);
            c.progress.install(done.clone());
            Resume {
                todo: Todo::new(&done.set, c.n_chunks()),
                done,
            }
        });
        self.cursor.set_base(resume.done.clone());
        Ok(())
    }
}

impl Env {
    /// Reads a text file as lines (without line breaks), in parallel chunks.
    ///
    /// Fails when the file cannot be opened; a line that is not UTF-8 fails the job with an
    /// error naming the file and line.
    ///
    /// With checkpoints, a job restored from a checkpoint reads exactly the lines that the
    /// checkpoint had not read, at any parallelism. The file must not change in between: a
    /// file of another length (or another [`Config::chunk_bytes`](crate::Config::chunk_bytes))
    /// fails the restore. The same holds for every file source.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("input.txt");
    /// std::fs::write(&path, "to be\nor not\n")?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lines = env.read_lines(&path)?.collect();
    /// env.execute()?;
    /// let mut got = lines.take();
    /// got.sort();
    /// assert_eq!(got, vec!["or not", "to be"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn read_lines(&mut self, path: impl AsRef<Path>) -> Result<Stream<Identity<String>>> {
        self.read_lines_with(path, ReadOptions::default())
    }

    /// [`Env::read_lines`] with options (e.g. skipping lines that are not UTF-8).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("input.txt");
    /// std::fs::write(&path, b"good\n\xff bad\nfine\n")?;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let lines = env.read_lines_with(&path, ReadOptions::lenient())?.collect();
    /// let summary = env.execute()?;
    /// assert_eq!(lines.take(), vec!["good", "fine"]);
    /// assert_eq!(summary.records_skipped(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn read_lines_with(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<String>>> {
        self.read_parsed(path.as_ref(), "read_lines", options, false, || {
            (Box::new(|l: &str| Ok(Some(l.to_owned()))), None)
        })
    }

    /// Reads a CSV file whose rows parse as `T` (a tuple of `FromStr` fields), in parallel
    /// chunks. Quoted fields may hold commas, doubled quotes and line breaks (RFC 4180, what
    /// [`Stream::write_csv`] writes); blank lines are skipped. A malformed row fails the job
    /// with an error naming the file, line and field, or is skipped and counted with
    /// [`ReadOptions::lenient`].
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("scores.csv");
    /// std::fs::write(&path, "ann,3\n\"bob\nsmith\",5\nann,4\n")?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let totals = env
    ///     .read_csv::<(String, u32)>(&path, ReadOptions::default())?
    ///     .key_by(|r| r.0.clone())
    ///     .sum(|r| r.1)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = totals.take();
    /// got.sort();
    /// assert_eq!(got, vec![("ann".to_string(), 7), ("bob\nsmith".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn read_csv<T: FromCsv + Send + 'static>(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<T>>> {
        self.read_parsed(path.as_ref(), "read_csv", options, true, csv_parser::<T>)
    }

    #[track_caller]
    pub(super) fn read_parsed<T: Send + 'static>(
        &mut self,
        path: &Path,
        kind: &str,
        options: ReadOptions,
        csv: bool,
        parser: impl Fn() -> Parsers<T> + 'static,
    ) -> Result<Stream<Identity<T>>> {
        let cfg = self.config();
        // A job that only prints its plan does not touch its inputs.
        let chunks = match cfg.plan_only {
            Some(_) => FileChunks::unopened(path, cfg.chunk_bytes, cfg.parallelism, csv),
            None => FileChunks::open(path, cfg.chunk_bytes, cfg.parallelism, csv)?,
        };
        let name = OpName::new(kind, std::panic::Location::caller());
        let desc = format!("{kind}({})", path.display());
        let total = chunks.len;
        Ok(
            self.source(cfg.parallelism, desc, true, move |index, metrics| {
                metrics.bytes_total.store(total, Ordering::Relaxed);
                Box::new(LineReader::new(
                    chunks.clone(),
                    index,
                    parser(),
                    options,
                    metrics.clone(),
                    name.clone(),
                )) as Box<dyn Input<T>>
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::source::position::sim;

    type Make<T> = Box<dyn FnMut(usize) -> Vec<Box<dyn Input<T>>>>;

    fn readers<T: Send + 'static>(
        path: &Path,
        chunk: u64,
        csv: bool,
        header: bool,
        parser: fn() -> Parsers<T>,
    ) -> Make<T> {
        let path = path.to_path_buf();
        Box::new(move |p| {
            let chunks = FileChunks::open(&path, chunk, p, csv).unwrap();
            let options = ReadOptions {
                header,
                ..ReadOptions::default()
            };
            (0..p)
                .map(|i| {
                    let name = OpName::new("read_lines", std::panic::Location::caller());
                    let r =
                        LineReader::new(chunks.clone(), i, parser(), options, Arc::default(), name);
                    Box::new(r) as Box<dyn Input<T>>
                })
                .collect()
        })
    }

    fn line_parser() -> Parsers<String> {
        (Box::new(|l: &str| Ok(Some(l.to_owned()))), None)
    }

    const RUNS: [&[usize]; 6] = [
        &[1, 2],
        &[2, 3],
        &[3, 1],
        &[2, 2],
        &[1, 2, 3, 1],
        &[3, 2, 1],
    ];

    #[test]
    fn a_restored_line_reader_reads_the_rest_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        let lines: Vec<String> = (0..300)
            .map(|i| format!("line {i}{}", "x".repeat(i % 23)))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap(); // no final line break
        let mut expect = lines.clone();
        expect.sort();
        for chunk in [16, 100] {
            for runs in RUNS {
                for seed in 0..8 {
                    for c in [1, 3] {
                        let make = readers(&path, chunk, false, false, line_parser);
                        let mut got = sim::chain(make, runs, seed, c);
                        got.sort();
                        assert_eq!(got, expect, "chunk {chunk} runs {runs:?} seed {seed} c {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_restored_line_reader_skips_the_header_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        let mut text = String::from("header\n");
        for i in 0..100 {
            text += &format!("row {i}\n");
        }
        std::fs::write(&path, &text).unwrap();
        let mut expect: Vec<String> = (0..100).map(|i| format!("row {i}")).collect();
        expect.sort();
        for runs in RUNS {
            for seed in 0..8 {
                let make = readers(&path, 24, false, true, line_parser);
                let mut got = sim::chain(make, runs, seed, 2);
                got.sort();
                assert_eq!(got, expect, "runs {runs:?} seed {seed}");
            }
        }
    }

    #[test]
    fn a_restored_csv_reader_reads_the_rest_exactly_once() {
        // Quoted fields with line breaks, commas and quotes, some longer than a chunk, so
        // that chunks start inside quotes; blank lines; a header.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let mut text = String::from("name,n\n");
        let mut expect = Vec::new();
        for i in 0..200u64 {
            let name = match i % 7 {
                0 => format!("multi\nline, {i}\n{}", "long ".repeat(i as usize % 13)),
                3 => format!("say \"{i}\"\nagain"),
                5 => format!("plain{i}"),
                _ => format!("p{i}"),
            };
            if name.contains(['\n', ',', '"']) {
                text += &format!("\"{}\",{i}\n", name.replace('"', "\"\""));
            } else {
                text += &format!("{name},{i}\n");
            }
            if i % 17 == 0 {
                text += "\n";
            }
            expect.push((name, i));
        }
        std::fs::write(&path, &text).unwrap();
        expect.sort();
        for chunk in [16, 50] {
            for runs in RUNS {
                for seed in 0..5 {
                    for c in [1, 3] {
                        let make = readers(&path, chunk, true, true, csv_parser::<(String, u64)>);
                        let mut got = sim::chain(make, runs, seed, c);
                        got.sort();
                        assert_eq!(got, expect, "chunk {chunk} runs {runs:?} seed {seed} c {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_finished_file_restores_as_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        std::fs::write(&path, "a\nb\nc\nd\ne\n").unwrap();
        let mut make = readers(&path, 3, false, false, line_parser);
        let r = sim::run(make(2), None, 1, Some(1_000_000));
        assert_eq!(r.kept.len(), 5);
        let again = sim::run(make(3), Some(&r.blobs), 2, None);
        assert!(again.kept.is_empty());
    }

    #[test]
    fn a_changed_file_does_not_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        std::fs::write(&path, "a\nb\nc\nd\ne\n").unwrap();
        let r = sim::run(
            readers(&path, 3, false, false, line_parser)(2),
            None,
            1,
            Some(1),
        );
        let positions: Vec<&[u8]> = r.blobs.values().map(Vec::as_slice).collect();
        let mut other = readers(&path, 4, false, false, line_parser)(1);
        let e = other[0].restore(&positions).unwrap_err();
        assert!(e.to_string().contains("chunks of 3 bytes"), "{e}");
        std::fs::write(&path, "a\nb\nc\nd\ne\nf\n").unwrap();
        let mut other = readers(&path, 3, false, false, line_parser)(1);
        let e = other[0].restore(&positions).unwrap_err().to_string();
        assert!(e.contains("input changed since the checkpoint"), "{e}");
        assert!(e.contains("lines.txt"), "{e}");
    }
}
