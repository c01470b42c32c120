//! Text helpers for jobs that key by short strings.

use std::hash::{Hash, Hasher};

const INLINE: usize = 23;

/// A string optimised for use as a key: up to 23 bytes are stored inline as three machine
/// words, so creating, hashing and comparing a short word touches no heap and no `memcpy`;
/// longer strings live on the heap.
///
/// ```
/// use flow_core::text::Word;
/// let w = Word::new("hello");
/// assert_eq!(w.as_str(), "hello");
/// assert_eq!(w, Word::new("hello"));
/// assert_ne!(w, Word::new("hello!"));
/// let long = "a string that does not fit inline";
/// assert_eq!(Word::new(long).as_str(), long);
/// ```
#[derive(Clone)]
pub struct Word(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes `0..len` hold the text, the rest are zero, byte 23 holds `len`.
    Inline([u64; 3]),
    /// Text longer than 23 bytes.
    Heap(Box<str>),
}

impl Word {
    /// A word holding `s`.
    #[inline]
    pub fn new(s: &str) -> Word {
        let b = s.as_bytes();
        if b.len() > INLINE {
            return Word(Repr::Heap(s.into()));
        }
        // Assemble whole words in registers: one store per word, no byte-wise copy that a
        // following wide load would have to wait for.
        let mut w = [0u64; 3];
        let mut i = 0;
        while i + 8 <= b.len() {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&b[i..i + 8]);
            w[i / 8] = u64::from_le_bytes(chunk);
            i += 8;
        }
        let mut last = 0u64;
        for (j, &byte) in b[i..].iter().enumerate() {
            last |= u64::from(byte) << (8 * j);
        }
        w[i / 8] |= last;
        w[2] |= (b.len() as u64) << 56;
        Word(Repr::Inline(w))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(w) => {
                let len = (w[2] >> 56) as usize;
                // SAFETY: `w` is three initialised u64s (24 bytes) that `new` filled from a
                // `&str`, in little-endian byte order on little-endian targets; `len <= 23`
                // bytes of them are that string's UTF-8 bytes. On big-endian targets `new`
                // is not used (see the cfg below), so the bytes are in order.
                let bytes = unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), len) };
                // SAFETY: these are the bytes of the `&str` given to `new`.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(s) => s,
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(w) => (w[2] >> 56) as usize,
            Repr::Heap(s) => s.len(),
        }
    }

    /// Whether the word is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(target_endian = "big")]
compile_error!("flow_core::text::Word assumes a little-endian target");

impl PartialEq for Word {
    #[inline]
    fn eq(&self, other: &Word) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline(a), Repr::Inline(b)) => a == b,
            (Repr::Heap(a), Repr::Heap(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Word {}

impl Hash for Word {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Inline(w) => {
                state.write_u64(w[0]);
                state.write_u64(w[1]);
                state.write_u64(w[2]);
            }
            Repr::Heap(s) => s.hash(state),
        }
    }
}

impl PartialOrd for Word {
    fn partial_cmp(&self, other: &Word) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Word {
    fn cmp(&self, other: &Word) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::ops::Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::str::FromStr for Word {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Word, Self::Err> {
        Ok(Word::new(s))
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Word {
        Word::new(s)
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl crate::csv::CsvField for Word {
    fn write_field(&self, out: &mut Vec<u8>) {
        self.as_str().write_field(out)
    }
}

impl crate::csv::CsvRow for Word {
    fn write_row(&self, out: &mut Vec<u8>) {
        crate::csv::CsvField::write_field(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn words_of_every_length_round_trip_and_compare_by_text() {
        let text = "abcdefghijklmnopqrstuvwxyzäöü0123456789";
        let mut seen = HashSet::new();
        for len in 0..=text.len() {
            if !text.is_char_boundary(len) {
                continue;
            }
            let s = &text[..len];
            let w = Word::new(s);
            assert_eq!(w.as_str(), s);
            assert_eq!(w.len(), s.len());
            assert_eq!(w, Word::new(s));
            assert!(seen.insert(w.clone()), "distinct texts give distinct words");
        }
        assert!(Word::new("a") < Word::new("b"));
        assert_eq!(format!("{:?}", Word::new("x\"")), "\"x\\\"\"");
    }
}
