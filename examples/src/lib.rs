//! Helpers shared by flow's example jobs and benchmarks: the word-count tokenizer of the
//! Flink guide, and a deterministic Zipf-distributed text corpus.
//!
//! ```
//! use flow_examples::tokenize;
//! let words: Vec<_> = tokenize("Hello, World! hello_2".to_string()).collect();
//! assert_eq!(words, ["hello", "world", "hello_2"]);
//! ```
use flow_core::text::Word;
use std::io::Write;
use std::path::Path;

pub mod crash;

/// Lowercase form of a word byte, or 0 for a byte that separates words (anything outside
/// `[A-Za-z0-9_]`).
pub const WORD_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// The words of a line: lowercase, split on every character that is not `[A-Za-z0-9_]`,
/// empty tokens dropped. The iterator owns the line, so a `flat_map` can return it, and
/// yields inline [`Word`]s: no allocation per word up to 23 bytes, whatever its case.
pub fn tokenize(line: String) -> Tokens {
    Tokens { line, pos: 0 }
}

/// Iterator over the words of one line; see [`tokenize`].
pub struct Tokens {
    line: String,
    pos: usize,
}

impl Iterator for Tokens {
    type Item = Word;

    #[inline]
    fn next(&mut self) -> Option<Word> {
        let b = self.line.as_bytes();
        let mut i = self.pos;
        while i < b.len() && WORD_BYTE[b[i] as usize] == 0 {
            i += 1;
        }
        if i == b.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        while i < b.len() && WORD_BYTE[b[i] as usize] != 0 {
            i += 1;
        }
        self.pos = i;
        // A token is ASCII `[A-Za-z0-9_]`, so ASCII lowercasing is exactly `WORD_BYTE`'s
        // mapping; it is done while the word is built, without allocating (up to 23 bytes).
        Some(Word::from_ascii_lowercase(&self.line[start..i]))
    }
}

/// splitmix64: a small, fast, well-mixed generator; a pure function of its state. Seeded
/// per record index, it makes generated sources deterministic in any order of generation.
#[derive(Clone, Copy)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The stream of record `i` of a generator, for a generator-specific `salt`.
    pub fn for_index(i: u64, salt: u64) -> Self {
        SplitMix(i.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ salt)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A Zipf-distributed vocabulary: word `r` (0-based rank) is drawn with probability
/// proportional to `1 / (r + 1)^s`.
pub struct ZipfWords {
    words: Vec<String>,
    cdf: Vec<f64>,
}

impl ZipfWords {
    /// A vocabulary of `n` distinct lowercase words with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fu", "go", "hi", "ja",
            "pe", "zu",
        ];
        let words = (0..n)
            .map(|r| {
                // bijective base-16 numeral in syllables: distinct for every rank
                let (mut k, mut w) = (r + 1, String::new());
                while k > 0 {
                    k -= 1;
                    w.push_str(SYLLABLES[k % 16]);
                    k /= 16;
                }
                w
            })
            .collect();
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for r in 0..n {
            acc += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(acc);
        }
        cdf.iter_mut().for_each(|c| *c /= acc);
        ZipfWords { words, cdf }
    }

    /// Line number `i` of the corpus: 6 to 14 words separated by single spaces. A pure
    /// function of `i`, so any reader produces the same corpus in any order.
    pub fn line(&self, i: u64) -> String {
        let mut rng = SplitMix(i.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5EED);
        let n = 6 + (rng.next_u64() % 9) as usize;
        let mut line = String::with_capacity(n * 8);
        for j in 0..n {
            if j > 0 {
                line.push(' ');
            }
            line.push_str(self.draw(&mut rng));
        }
        line
    }

    /// A word drawn from the Zipf distribution.
    fn draw(&self, rng: &mut SplitMix) -> &str {
        let u = rng.unit();
        let r = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.words.len() - 1);
        &self.words[r]
    }

    /// Line number `i` of a mixed-case prose-like corpus over the same vocabulary: 6 to 14
    /// words, each lowercase (3 in 8), Capitalised (2 in 8), UPPERCASE (1 in 8), rAnDoMlY
    /// cased (1 in 8), or lowercase with digits (1 in 8: `word_42` or `word7`); 1 word in 32
    /// is a `snake_Case` compound of two or three words, so a few exceed 23 bytes. Words are
    /// separated by spaces or punctuation (`, . ; : - ' ( ) "` and tabs) and the line ends
    /// with `.`, `!` or `?`. A pure function of `i`.
    pub fn text_line(&self, i: u64) -> String {
        const SEP: [&str; 16] = [
            " ", " ", " ", " ", " ", " ", ", ", ". ", "; ", ": ", " - ", "'", " (", ") ", " \"",
            "\t",
        ];
        const END: [&str; 4] = [".", ".", "!", "?"];
        let mut rng = SplitMix::for_index(i, 0x7E47_C0DE);
        let n = 6 + (rng.next_u64() % 9) as usize;
        let mut line = String::with_capacity(n * 10);
        let mut word = String::with_capacity(32);
        for j in 0..n {
            if j > 0 {
                line.push_str(SEP[(rng.next_u64() % SEP.len() as u64) as usize]);
            }
            word.clear();
            word.push_str(self.draw(&mut rng));
            if rng.next_u64().is_multiple_of(32) {
                for _ in 0..1 + rng.next_u64() % 2 {
                    word.push('_');
                    word.push_str(self.draw(&mut rng));
                }
            }
            let bits = rng.next_u64();
            match bits % 8 {
                0..=2 => {}
                3 | 4 => word[..1].make_ascii_uppercase(),
                5 => word.make_ascii_uppercase(),
                6 => {
                    // the words are ASCII: one byte per char
                    word = (word.bytes().enumerate())
                        .map(|(k, c)| match (bits >> (8 + k % 56)) & 1 {
                            1 => c.to_ascii_uppercase() as char,
                            _ => c as char,
                        })
                        .collect();
                }
                _ => {
                    let d = (bits >> 8) % 100;
                    if d < 50 {
                        word.push('_');
                    }
                    word.push_str(itoa::Buffer::new().format(d));
                }
            }
            line.push_str(&word);
        }
        line.push_str(END[(rng.next_u64() % END.len() as u64) as usize]);
        line
    }

    /// Writes lines `0, 1, ...` to `path` until it holds at least `bytes` bytes.
    pub fn write_corpus(&self, path: &Path, bytes: u64) -> std::io::Result<u64> {
        write_lines(path, bytes, |i| self.line(i))
    }

    /// Writes lines `0, 1, ...` of the mixed-case corpus ([`ZipfWords::text_line`]) to `path`
    /// until it holds at least `bytes` bytes.
    pub fn write_text_corpus(&self, path: &Path, bytes: u64) -> std::io::Result<u64> {
        write_lines(path, bytes, |i| self.text_line(i))
    }
}

/// Writes `line(0), line(1), ...`, each followed by a newline, to `path` until it holds at
/// least `bytes` bytes; returns the bytes written.
fn write_lines(path: &Path, bytes: u64, line: impl Fn(u64) -> String) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let (mut written, mut i) = (0u64, 0u64);
    while written < bytes {
        let l = line(i);
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
        written += l.len() as u64 + 1;
        i += 1;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_the_flink_example() {
        let t: Vec<_> = tokenize("  It's a--DOG's_life 42!".into()).collect();
        assert_eq!(t, ["it", "s", "a", "dog", "s_life", "42"]);
        assert_eq!(tokenize(" ,;. ".into()).count(), 0);
        assert_eq!(tokenize(String::new()).count(), 0);
        let t: Vec<_> = tokenize("MiXeD CASE_Word\tX1y2Z3 ÄbC über".into()).collect();
        assert_eq!(t, ["mixed", "case_word", "x1y2z3", "bc", "ber"]);
        let at = "ABCDEFGHIJKLMNOPQRSTUVW"; // 23 bytes: inline
        let over = "ABCDEFGHIJKLMNOPQRSTUVWX"; // 24 bytes: heap
        let t: Vec<_> = tokenize(format!("{at} {over}")).collect();
        assert_eq!(t, [at.to_lowercase().as_str(), &over.to_lowercase()]);
        let long = "A".repeat(40);
        assert_eq!(
            tokenize(long.clone()).next().unwrap().as_str(),
            long.to_lowercase()
        );
    }

    /// The tokenisation of `wc_baseline`, byte by byte through `WORD_BYTE`.
    fn reference_tokens(line: &str) -> Vec<String> {
        line.as_bytes()
            .split(|&b| WORD_BYTE[b as usize] == 0)
            .filter(|t| !t.is_empty())
            .map(|t| t.iter().map(|&b| WORD_BYTE[b as usize] as char).collect())
            .collect()
    }

    #[test]
    fn mixed_case_corpus_is_deterministic_and_tokenizes_like_the_baseline() {
        let z = ZipfWords::new(100_000, 1.07);
        assert_eq!(z.text_line(11), z.text_line(11));
        assert_ne!(z.text_line(11), z.text_line(12));
        let (mut words, mut not_lower, mut long, mut digits) = (0, 0, 0, 0);
        for i in 0..3000 {
            let line = z.text_line(i);
            let got: Vec<String> = tokenize(line.clone()).map(|w| w.to_string()).collect();
            let want = reference_tokens(&line);
            assert_eq!(got, want, "line {i}: {line:?}");
            for w in &want {
                words += 1;
                long += usize::from(w.len() > 23);
                digits += usize::from(w.bytes().any(|b| b.is_ascii_digit()));
            }
            not_lower += line.bytes().filter(u8::is_ascii_uppercase).count();
        }
        assert!(words > 20_000, "{words} words");
        assert!(not_lower > words / 2, "{not_lower} uppercase bytes");
        assert!(long > 0 && long < words / 100, "{long} long words");
        assert!(digits > words / 20, "{digits} words with digits");
    }

    #[test]
    fn corpus_is_deterministic_and_zipf_shaped() {
        let z = ZipfWords::new(1000, 1.07);
        assert_eq!(z.line(7), z.line(7));
        let mut counts = rustc_hash::FxHashMap::<String, u64>::default();
        for i in 0..2000 {
            let line = z.line(i);
            let n = line.split(' ').count();
            assert!((6..=14).contains(&n));
            for w in line.split(' ') {
                *counts.entry(w.to_string()).or_default() += 1;
            }
        }
        // the most frequent word is rank 0 and clearly more frequent than rank 9
        let top = counts.iter().max_by_key(|(_, &c)| c).unwrap().0.clone();
        assert_eq!(top, z.words[0]);
        assert!(counts[&z.words[0]] > 3 * counts.get(&z.words[9]).copied().unwrap_or(0));
    }
}

/// A `window_sum` event: key, event time (ms), value.
pub type Event = (Word, i64, u64);

/// Event `i` of the built-in event stream: 10,000 keys, timestamps rising 1 ms per event,
/// 10% of events up to 100 ms late (the shape of the reference benchmark data).
pub fn generated_event(i: u64) -> Event {
    let mut r = SplitMix::for_index(i, 0xC0FFEE);
    let key = r.next_u64() % 10_000;
    let x = r.next_u64();
    let jitter = if x.is_multiple_of(10) {
        (x >> 8) % 101
    } else {
        0
    };
    let ts = 1_700_000_000_000 + i as i64 - jitter.min(i) as i64;
    let mut buf = itoa::Buffer::new();
    let mut name = String::with_capacity(8);
    name.push('k');
    name.push_str(buf.format(key));
    (Word::new(&name), ts, r.next_u64() % 1000)
}

/// Sum and count of the values of a window of [`Event`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct SumCount;

impl flow_core::Aggregate<Event> for SumCount {
    type Acc = (u64, u64);
    type Out = (u64, u64);
    fn create(&mut self, e: Event) -> (u64, u64) {
        (e.2, 1)
    }
    fn add(&mut self, acc: &mut (u64, u64), e: Event) {
        acc.0 += e.2;
        acc.1 += 1;
    }
    fn merge(&mut self, a: &mut (u64, u64), b: (u64, u64)) {
        a.0 += b.0;
        a.1 += b.1;
    }
    fn result(&mut self, acc: (u64, u64)) -> (u64, u64) {
        acc
    }
}
