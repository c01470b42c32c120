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
pub struct Word {
    /// Inline: bytes `0..len` hold the text, the rest are zero, byte 23 (the top byte of
    /// `w[2]`) holds `len <= 23`. Heap: byte 23 is [`HEAP`], `w[0]` is the pointer and `w[1]`
    /// the length of a leaked `Box<str>` that this `Word` owns.
    w: [u64; 3],
}

/// The value of byte 23 that marks a heap-allocated word (an inline length is at most 23).
const HEAP: u64 = 0xFF;

// SAFETY: a `Word` owns its heap text exclusively (like a `Box<str>`, which is Send and Sync),
// and inline words are plain integers.
unsafe impl Send for Word {}
// SAFETY: see `Send`: shared access only reads the text.
unsafe impl Sync for Word {}

impl Word {
    /// A word holding `s`.
    #[inline]
    pub fn new(s: &str) -> Word {
        let b = s.as_bytes();
        if b.len() > INLINE {
            let boxed: Box<str> = s.into();
            let len = boxed.len();
            let ptr = Box::into_raw(boxed).cast::<u8>();
            return Word {
                w: [ptr as usize as u64, len as u64, HEAP << 56],
            };
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
        Word { w }
    }

    #[inline]
    fn is_heap(&self) -> bool {
        self.w[2] >> 56 == HEAP
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        let (ptr, len) = if self.is_heap() {
            (self.w[0] as usize as *const u8, self.w[1] as usize)
        } else {
            (self.w.as_ptr().cast::<u8>(), (self.w[2] >> 56) as usize)
        };
        // SAFETY: heap: `ptr`/`len` come from the `Box<str>` this word owns (see `new`), alive
        // until `drop`. Inline: `w` is 24 initialised bytes that `new` filled from a `&str` in
        // little-endian order (big-endian targets are rejected below), and `len <= 23` of them
        // are that string's bytes. Either way the bytes are valid UTF-8 from a `&str`.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        if self.is_heap() {
            self.w[1] as usize
        } else {
            (self.w[2] >> 56) as usize
        }
    }

    /// Whether the word is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Word {
    #[inline]
    fn drop(&mut self) {
        if self.is_heap() {
            let ptr = std::ptr::slice_from_raw_parts_mut(
                self.w[0] as usize as *mut u8,
                self.w[1] as usize,
            );
            // SAFETY: a heap word owns the `Box<str>` leaked in `new` (or `clone`), and this is
            // the only place that frees it; `str` and `[u8]` have the same layout.
            drop(unsafe { Box::from_raw(ptr as *mut str) });
        }
    }
}

impl Clone for Word {
    #[inline]
    fn clone(&self) -> Word {
        if self.is_heap() {
            Word::new(self.as_str())
        } else {
            Word { w: self.w }
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("flow_core::text::Word assumes a little-endian target");

impl PartialEq for Word {
    #[inline]
    fn eq(&self, other: &Word) -> bool {
        match (self.is_heap(), other.is_heap()) {
            (false, false) => self.w == other.w,
            (true, true) => self.as_str() == other.as_str(),
            _ => false,
        }
    }
}

impl Eq for Word {}

impl Hash for Word {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.is_heap() {
            self.as_str().hash(state)
        } else {
            state.write_u64(self.w[0]);
            state.write_u64(self.w[1]);
            state.write_u64(self.w[2]);
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

impl crate::io::csv::CsvField for Word {
    fn write_field(&self, out: &mut Vec<u8>) {
        self.as_str().write_field(out)
    }
}

impl crate::io::csv::CsvRow for Word {
    fn write_row(&self, out: &mut Vec<u8>) {
        crate::io::csv::CsvField::write_field(self, out)
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
        assert_eq!(std::mem::size_of::<Word>(), 24);
        let long = Word::new("a string much longer than twenty-three bytes");
        let copy = long.clone();
        drop(long);
        assert_eq!(
            copy.as_str(),
            "a string much longer than twenty-three bytes"
        );
        assert_eq!(format!("{:?}", Word::new("x\"")), "\"x\\\"\"");
    }
}
