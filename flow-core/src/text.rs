//! Text helpers for jobs that key by short strings.

use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

const INLINE: usize = 23;

/// A string optimised for use as a key: up to 23 bytes are stored inline as three machine
/// words, so creating, hashing and comparing a short word touches no heap and no `memcpy`;
/// longer strings live on the heap. [`Word::from_ascii_lowercase`] lowercases while it builds
/// the word.
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
#[repr(C)]
pub struct Word {
    repr: Repr,
}

/// The 24 bytes of a [`Word`], read as one of two forms told apart by byte 23 (the top byte
/// of the third `u64` on a little-endian target), which both forms hold as a plain integer:
///
/// * `inline`: bytes `0..len` hold the text, the rest are zero, byte 23 holds `len <= 23`;
/// * `heap`: byte 23 is [`HEAP`], and `ptr`/`len` are the start and length of a leaked
///   `Box<str>` that the `Word` owns. The pointer is stored as a pointer, never as an integer,
///   so it keeps its provenance.
#[repr(C)]
union Repr {
    inline: [u64; 3],
    heap: Heap,
}

/// The heap form of a [`Word`].
#[repr(C)]
#[derive(Clone, Copy)]
struct Heap {
    /// Start of the owned `Box<str>`.
    ptr: NonNull<u8>,
    /// Its length in bytes.
    len: u64,
    /// `HEAP << 56`: marks the heap form in byte 23 (and zeroes bytes 16..23).
    tag: u64,
}

// Both forms are 24 bytes and the tag word sits at bytes 16..24 in both, on 32- and 64-bit
// targets alike (a 32-bit pointer is followed by padding, which is only read as part of the
// heap form's `ptr`).
const _: () = {
    assert!(std::mem::size_of::<Repr>() == 24);
    assert!(std::mem::size_of::<Heap>() == 24);
    assert!(std::mem::offset_of!(Heap, tag) == 16);
};

/// The value of byte 23 that marks a heap-allocated word (an inline length is at most 23).
const HEAP: u64 = 0xFF;

// SAFETY: a `Word` owns its heap text exclusively (like a `Box<str>`, which is Send and Sync),
// and inline words are plain integers.
unsafe impl Send for Word {}
// SAFETY: see `Send`: shared access only reads the text.
unsafe impl Sync for Word {}

/// The bytes of `b` (at most 23) packed little-endian into three words, the rest zero.
///
/// Every word is computed in registers from fixed-width loads (two overlapping ones for a
/// partial word), with no loop and no store to a stack array at a variable index: a caller
/// that goes on to process the words, or a wide load of the stored `Word`, never waits for a
/// store that cannot be forwarded.
#[inline(always)]
fn pack(b: &[u8]) -> [u64; 3] {
    let n = b.len();
    debug_assert!(n <= INLINE);
    if n <= 8 {
        [up_to_8(b), 0, 0]
    } else if n <= 16 {
        // bytes n-8..n, shifted down so that byte 8 lands at the bottom
        [le64(b, 0), le64(b, n - 8) >> (8 * (16 - n)), 0]
    } else {
        [le64(b, 0), le64(b, 8), le64(b, n - 8) >> (8 * (24 - n))]
    }
}

/// The 8 bytes of `b` at `at`, little-endian.
#[inline(always)]
fn le64(b: &[u8], at: usize) -> u64 {
    let mut chunk = [0u8; 8];
    chunk.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(chunk)
}

/// The bytes of `b` (at most 8), little-endian, zero-extended.
#[inline(always)]
fn up_to_8(b: &[u8]) -> u64 {
    let n = b.len();
    let le32 = |at: usize| u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
    if n >= 4 {
        // two overlapping 4-byte loads; the overlap holds equal bytes, so OR is exact
        le32(0) | le32(n - 4) << (8 * (n - 4))
    } else if n > 0 {
        let byte = |at: usize| u64::from(b[at]) << (8 * at);
        byte(0) | byte(n / 2) | byte(n - 1)
    } else {
        0
    }
}

/// Each byte of `x` in `b'A'..=b'Z'` replaced by its lowercase form, all other bytes (other
/// ASCII, and bytes >= 0x80 of multi-byte UTF-8 sequences) unchanged: eight bytes at once.
#[inline(always)]
fn lower8(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn splat(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    let low = x & LOW7;
    // Per byte, `low + c` is at most 0x7F + 0x3F < 0x100, so no carry crosses bytes; its top
    // bit is set exactly when `low >= 0x80 - c`.
    let ge_a = low + splat(0x80 - b'A');
    let gt_z = low + splat(0x80 - b'Z' - 1);
    let upper = ge_a & !gt_z & !x & HIGH;
    // 0x80 >> 2 == 0x20, the ASCII case bit.
    x | (upper >> 2)
}

impl Word {
    /// A word holding `s`.
    #[inline]
    pub fn new(s: &str) -> Word {
        let b = s.as_bytes();
        if b.len() > INLINE {
            return Word::heap(s.into());
        }
        Word::inline(pack(b), b.len())
    }

    /// A word holding `s` with ASCII letters lowercased (like
    /// `Word::new(&s.to_ascii_lowercase())`), written straight into the word: no allocation
    /// for up to 23 bytes.
    ///
    /// ```
    /// use flow_core::text::Word;
    /// assert_eq!(Word::from_ascii_lowercase("Hello_World42"), "hello_world42");
    /// assert_eq!(Word::from_ascii_lowercase("ÄBC"), "Äbc");
    /// ```
    #[inline]
    pub fn from_ascii_lowercase(s: &str) -> Word {
        let b = s.as_bytes();
        if b.len() > INLINE {
            return Word::heap(s.to_ascii_lowercase().into_boxed_str());
        }
        // Zero padding stays zero: 0 is not an uppercase letter.
        let [a, b2, c] = pack(b);
        Word::inline([lower8(a), lower8(b2), lower8(c)], b.len())
    }

    /// The inline form of the `len <= 23` bytes packed in `w` (byte 23 zero).
    #[inline(always)]
    fn inline(mut w: [u64; 3], len: usize) -> Word {
        debug_assert!(len <= INLINE && w[2] >> 56 == 0);
        w[2] |= (len as u64) << 56;
        Word {
            repr: Repr { inline: w },
        }
    }

    /// The heap form owning `boxed` (which is longer than 23 bytes).
    #[cold]
    fn heap(boxed: Box<str>) -> Word {
        let len = boxed.len() as u64;
        // A leaked box is never null; the pointer keeps the allocation's provenance, and
        // `drop` turns it back into the box.
        let ptr = NonNull::from(Box::leak(boxed)).cast::<u8>();
        Word {
            repr: Repr {
                heap: Heap {
                    ptr,
                    len,
                    tag: HEAP << 56,
                },
            },
        }
    }

    /// The third word, whose top byte tells the forms apart.
    #[inline(always)]
    fn tail(&self) -> u64 {
        // SAFETY: both forms hold an initialised integer at bytes 16..24 (`inline[2]` or
        // `heap.tag`, same offset, checked above), and reading integer bytes as `u64` is
        // valid whichever field wrote them.
        unsafe { self.repr.inline[2] }
    }

    #[inline(always)]
    fn is_heap(&self) -> bool {
        self.tail() >> 56 == HEAP
    }

    /// The heap form, if this is a heap word.
    #[inline(always)]
    fn as_heap(&self) -> Option<Heap> {
        if self.is_heap() {
            // SAFETY: byte 23 is `HEAP` only when `heap` constructed this `Word` (an inline
            // length is at most 23), so the active field is `heap`.
            Some(unsafe { self.repr.heap })
        } else {
            None
        }
    }

    /// The inline form, if this is an inline word.
    #[inline(always)]
    fn as_inline(&self) -> Option<&[u64; 3]> {
        if self.is_heap() {
            None
        } else {
            // SAFETY: byte 23 is not `HEAP`, so `inline` constructed this `Word` and all 24
            // bytes are initialised integers.
            Some(unsafe { &self.repr.inline })
        }
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        let (ptr, len) = match self.as_heap() {
            Some(h) => (h.ptr.as_ptr().cast_const(), h.len as usize),
            None => (
                std::ptr::from_ref(&self.repr).cast::<u8>(),
                (self.tail() >> 56) as usize,
            ),
        };
        // SAFETY: heap: `ptr` (with its provenance) and `len` come from the `Box<str>` this
        // word owns (see `heap`), alive and unchanged until `drop`, which needs `&mut self`.
        // Inline: `ptr` points to the 24 initialised integer bytes of `self`, borrowed for the
        // returned lifetime, filled little-endian from a `&str` (big-endian targets are
        // rejected below), and the first `len <= 23` of them are that string's bytes, or its
        // ASCII-lowercased bytes, which are valid UTF-8 too (only bytes `A..=Z` change, to
        // other ASCII bytes). Either way the bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match self.as_heap() {
            Some(h) => h.len as usize,
            None => (self.tail() >> 56) as usize,
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
        if let Some(h) = self.as_heap() {
            let ptr = std::ptr::slice_from_raw_parts_mut(h.ptr.as_ptr(), h.len as usize);
            // SAFETY: a heap word owns the `Box<str>` leaked in `heap` (whose pointer, with
            // its provenance, and length are `h`), no `&str` from `as_str` outlives `&mut
            // self`, and this is the only place that frees it; `str` and `[u8]` have the same
            // layout.
            drop(unsafe { Box::from_raw(ptr as *mut str) });
        }
    }
}

impl Clone for Word {
    #[inline]
    fn clone(&self) -> Word {
        match self.as_inline() {
            Some(&w) => Word {
                repr: Repr { inline: w },
            },
            None => Word::heap(self.as_str().into()),
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("flow_core::text::Word assumes a little-endian target");

impl PartialEq for Word {
    #[inline]
    fn eq(&self, other: &Word) -> bool {
        match (self.as_inline(), other.as_inline()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.as_str() == other.as_str(),
            _ => false,
        }
    }
}

impl Eq for Word {}

impl Hash for Word {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal texts have equal forms (inline exactly when at most 23 bytes, with zero
        // padding), so equal words hash equally.
        match self.as_inline() {
            Some(w) => {
                state.write_u64(w[0]);
                state.write_u64(w[1]);
                state.write_u64(w[2]);
            }
            None => self.as_str().hash(state),
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

/// A word is stored in checkpoints as its text.
impl serde::Serialize for Word {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Word;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Word, E> {
                Ok(Word::from(v))
            }
        }
        d.deserialize_str(V)
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

    #[test]
    fn word_is_three_machine_words() {
        assert_eq!(std::mem::size_of::<Word>(), 24);
    }

    fn hash_of(w: &Word) -> u64 {
        use std::hash::BuildHasher;
        rustc_hash::FxBuildHasher.hash_one(w)
    }

    #[test]
    fn lowercasing_constructor_at_the_inline_boundary() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 22, 23, 24, 25, 40] {
            let upper: String = (0..len).map(|i| (b'A' + (i % 26) as u8) as char).collect();
            let w = Word::from_ascii_lowercase(&upper);
            let expected = upper.to_ascii_lowercase();
            assert_eq!(w.as_str(), expected, "len {len}");
            assert_eq!(w.len(), len);
            assert_eq!(w.is_heap(), len > INLINE, "len {len}");
            assert_eq!(w, Word::new(&expected));
            assert_eq!(hash_of(&w), hash_of(&Word::new(&expected)));
            assert_eq!(w.clone(), w);
        }
        let at = "Abcdefghijklmnopqrstuvw"; // 23 bytes: the longest inline word
        assert_eq!(at.len(), 23);
        assert!(!Word::from_ascii_lowercase(at).is_heap());
        let over = "Abcdefghijklmnopqrstuvwx"; // 24 bytes: on the heap
        assert!(Word::from_ascii_lowercase(over).is_heap());
        assert_eq!(
            Word::from_ascii_lowercase(over),
            over.to_ascii_lowercase().as_str()
        );
    }

    #[test]
    fn lowercasing_constructor_maps_only_ascii_letters() {
        let cases = [
            ("MiXeD_CaSe_42", "mixed_case_42"),
            ("ABC_XYZ", "abc_xyz"),
            ("0123456789_", "0123456789_"),
            ("@[`{", "@[`{"), // the neighbours of A..=Z and a..=z
            ("already_lower", "already_lower"),
            ("ÄÖÜ Straße", "ÄÖÜ straße"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(Word::from_ascii_lowercase(input), expected, "{input:?}");
        }
        for b in 0u8..0x80 {
            let s = String::from(b as char).repeat(9);
            assert_eq!(
                Word::from_ascii_lowercase(&s).as_str(),
                s.to_ascii_lowercase(),
                "byte {b:#x}"
            );
        }
    }

    #[test]
    fn heap_words_clone_compare_and_drop() {
        let a = Word::new("Heap Word Longer Than Twenty-Three");
        let b = Word::from_ascii_lowercase(a.as_str());
        assert_ne!(a, b);
        assert_eq!(b, "heap word longer than twenty-three");
        let c = b.clone();
        drop(b);
        assert_eq!(c.len(), 34);
        assert!(a < c, "uppercase sorts first");
        assert_ne!(a, Word::new("short"));
        assert_eq!(format!("{c}"), "heap word longer than twenty-three");
        let words: Vec<Word> = (0..50).map(|i| Word::new(&"x".repeat(i))).collect();
        let copies = words.clone();
        assert_eq!(words, copies);
        let sent = std::thread::spawn(move || copies.iter().map(Word::len).sum::<usize>());
        assert_eq!(sent.join().unwrap(), (0..50).sum::<usize>());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: if cfg!(miri) { 16 } else { 512 },
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn lowercasing_constructor_equals_lowercase_then_new(s in "[ -~]{0,40}") {
            let expected = Word::new(&s.to_ascii_lowercase());
            let w = Word::from_ascii_lowercase(&s);
            proptest::prop_assert_eq!(&w, &expected);
            proptest::prop_assert_eq!(w.as_str(), expected.as_str());
            proptest::prop_assert_eq!(hash_of(&w), hash_of(&expected));
            proptest::prop_assert_eq!(w.cmp(&expected), std::cmp::Ordering::Equal);
        }

        #[test]
        fn lowercasing_constructor_on_any_text(s in "\\PC{0,30}") {
            let w = Word::from_ascii_lowercase(&s);
            proptest::prop_assert_eq!(w.as_str(), s.to_ascii_lowercase());
            let same = Word::new(&s);
            proptest::prop_assert_eq!(same.as_str(), s.as_str());
        }
    }
}
