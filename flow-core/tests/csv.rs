//! CSV written by `write_csv` reads back with `read_csv`: quoted fields with commas, doubled
//! quotes and line breaks, at any chunk size and parallelism (records then span chunks).
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod common;
use flow_core::prelude::*;
use proptest::prelude::*;
use std::io::Write;

fn field() -> impl Strategy<Value = String> {
    // Mostly plain text, with commas, quotes and line breaks mixed in.
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::char::range('a', 'z').prop_map(String::from),
            1 => Just(",".to_string()),
            1 => Just("\"".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\r\n".to_string()),
            1 => Just(" ".to_string()),
            1 => Just("é".to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn rows_written_by_write_csv_read_back_unchanged(
        rows in proptest::collection::vec((field(), any::<u32>(), field()), 0..120),
        chunk in 1u64..200,
        parallelism in 1usize..=4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut env = Env::new(Config::default().parallelism(2));
        env.from_iter(rows.clone()).write_csv(&out).unwrap();
        env.execute().unwrap();
        // One file, in the order written.
        let file = out.join("part-00000.csv");
        let mut env = Env::new(Config::default().parallelism(parallelism).chunk_bytes(chunk));
        let back = env.read_csv::<(String, u32, String)>(&file, ReadOptions::default()).unwrap().collect();
        env.execute().unwrap();
        let mut got = back.take();
        let mut want = rows;
        // A row whose only field is empty is a blank line, which CSV readers skip; every row
        // here has three fields, so none is blank.
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_bad_record_after_a_multi_line_field_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut f = std::fs::File::create(&input).unwrap();
    write!(f, "a,1\n\"two\nlines\",2\n\nc,x\nd,4\n").unwrap();
    drop(f);
    for chunk in [1, 3, 7, 64] {
        let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(chunk));
        let _rows = env
            .read_csv::<(String, u32)>(&input, ReadOptions::default())
            .unwrap()
            .collect();
        let err = env.execute().unwrap_err().to_string();
        assert!(err.contains("in.csv:5:"), "chunk {chunk}: {err}");
        assert!(err.contains("field 2"), "{err}");
        let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(chunk));
        let rows = env
            .read_csv::<(String, u32)>(&input, ReadOptions::lenient())
            .unwrap()
            .collect();
        env.execute().unwrap();
        let mut got = rows.take();
        got.sort();
        assert_eq!(
            got,
            vec![("a".into(), 1), ("d".into(), 4), ("two\nlines".into(), 2)],
            "chunk {chunk}"
        );
    }
}
