//! CSV rows: how records are written to and parsed from comma-separated text.
//!
//! Fields containing a comma, a double quote or a line break are quoted, with inner quotes
//! doubled (RFC 4180). Tuples of fields are rows.

/// A value that can be one CSV field.
pub trait CsvField {
    /// Appends the field's text (quoted when needed) to `out`.
    fn write_field(&self, out: &mut Vec<u8>);
}

/// A record that can be one CSV row (without the line break).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be written as a CSV row",
    label = "not a `CsvRow`",
    note = "rows are tuples of up to 8 fields (strings, numbers, `bool`, `char`, `Word`, `Option`s of these) or single such values; for a struct that derives `Serialize`, use `write_csv_serde` (or `write_json_lines`, `print_debug`)"
)]
pub trait CsvRow {
    /// Appends the row's fields, separated by commas, to `out`.
    fn write_row(&self, out: &mut Vec<u8>);
}

/// A record that can be parsed from one CSV row.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from a CSV row",
    label = "not `FromCsv`",
    note = "`read_csv` reads tuples of up to 8 fields whose types implement `FromStr`, e.g. `read_csv::<(String, i64, u64)>`"
)]
pub trait FromCsv: Sized {
    /// Parses the fields of one row. The error says what is wrong, without the position,
    /// which the caller adds.
    fn from_fields(fields: &[&str]) -> Result<Self, String>;
}

fn write_text(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

impl CsvField for str {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_text(self, out)
    }
}
impl CsvField for String {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_text(self, out)
    }
}
impl CsvField for compact_str::CompactString {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_text(self, out)
    }
}
impl<T: CsvField + ?Sized> CsvField for &T {
    fn write_field(&self, out: &mut Vec<u8>) {
        (**self).write_field(out)
    }
}
impl CsvField for crate::text::Word {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_text(self.as_str(), out)
    }
}
impl CsvRow for crate::text::Word {
    fn write_row(&self, out: &mut Vec<u8>) {
        self.write_field(out)
    }
}
impl CsvField for char {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_text(self.encode_utf8(&mut [0; 4]), out)
    }
}
impl CsvField for bool {
    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" })
    }
}
impl<T: CsvField> CsvField for Option<T> {
    fn write_field(&self, out: &mut Vec<u8>) {
        if let Some(v) = self {
            v.write_field(out)
        }
    }
}

macro_rules! int_fields {
    ($($t:ty),*) => {$(
        impl CsvField for $t {
            #[inline]
            fn write_field(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes())
            }
        }
        impl CsvRow for $t {
            fn write_row(&self, out: &mut Vec<u8>) {
                self.write_field(out)
            }
        }
    )*};
}
int_fields!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

macro_rules! display_fields {
    ($($t:ty),*) => {$(
        impl CsvField for $t {
            fn write_field(&self, out: &mut Vec<u8>) {
                use std::io::Write;
                let _ = write!(out, "{}", self);
            }
        }
        impl CsvRow for $t {
            fn write_row(&self, out: &mut Vec<u8>) {
                self.write_field(out)
            }
        }
    )*};
}
display_fields!(f32, f64);

macro_rules! single_rows {
    ($($t:ty),*) => {$(
        impl CsvRow for $t {
            fn write_row(&self, out: &mut Vec<u8>) {
                self.write_field(out)
            }
        }
    )*};
}
single_rows!(String, str, compact_str::CompactString, char, bool);

macro_rules! tuple_rows {
    ($( ($($n:tt $t:ident),+) )*) => {$(
        impl<$($t: CsvField),+> CsvRow for ($($t,)+) {
            fn write_row(&self, out: &mut Vec<u8>) {
                let mut first = true;
                $(
                    if !first { out.push(b','); }
                    first = false;
                    self.$n.write_field(out);
                )+
                let _ = first;
            }
        }

        impl<$($t: std::str::FromStr),+> FromCsv for ($($t,)+)
        where $(<$t as std::str::FromStr>::Err: std::fmt::Display),+
        {
            fn from_fields(fields: &[&str]) -> Result<Self, String> {
                const N: usize = [$(stringify!($t)),+].len();
                if fields.len() != N {
                    return Err(format!("expected {} fields, found {}", N, fields.len()));
                }
                Ok(($(
                    fields[$n].parse::<$t>().map_err(|e| {
                        format!("field {} ({:?}): {}", $n + 1, fields[$n], e)
                    })?,
                )+))
            }
        }
    )*};
}
tuple_rows! {
    (0 A)
    (0 A, 1 B)
    (0 A, 1 B, 2 C)
    (0 A, 1 B, 2 C, 3 D)
    (0 A, 1 B, 2 C, 3 D, 4 E)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
}

/// Parses one CSV line as a row of type `T`. Unquoted lines of up to 16 fields, the common
/// case, are split on the stack without allocating.
pub fn parse_row<T: FromCsv>(line: &str, scratch: &mut Vec<String>) -> Result<T, String> {
    if !line.contains('"') {
        let mut arr = [""; 16];
        let mut n = 0;
        for f in line.split(',') {
            if n == arr.len() {
                n += 1;
                break;
            }
            arr[n] = f;
            n += 1;
        }
        if n <= arr.len() {
            return T::from_fields(&arr[..n]);
        }
    }
    let fields = split_fields(line, scratch)?;
    T::from_fields(&fields)
}

/// Splits one CSV line into fields, unquoting quoted fields. `scratch` holds unquoted text.
pub fn split_fields<'a>(
    line: &'a str,
    scratch: &'a mut Vec<String>,
) -> Result<Vec<&'a str>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').collect());
    }
    scratch.clear();
    let mut spans: Vec<Result<&'a str, usize>> = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'"') {
            let mut text = String::new();
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("unterminated quoted field at byte {}", i)),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        text.push('"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {
                        let rest = &line[i..];
                        let n = rest.find('"').unwrap_or(rest.len());
                        text.push_str(&rest[..n]);
                        i += n;
                    }
                }
            }
            scratch.push(text);
            spans.push(Err(scratch.len() - 1));
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => {
                    return Err(format!(
                        "unexpected character after quoted field at byte {}",
                        i + 1
                    ))
                }
            }
        } else {
            let rest = &line[i..];
            let n = rest.find(',').unwrap_or(rest.len());
            spans.push(Ok(&rest[..n]));
            i += n;
            if i >= line.len() {
                break;
            }
            i += 1;
            if i == line.len() {
                spans.push(Ok(""));
                break;
            }
        }
    }
    let scratch: &'a Vec<String> = scratch;
    Ok(spans
        .into_iter()
        .map(|s| match s {
            Ok(s) => s,
            Err(ix) => scratch[ix].as_str(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<R: CsvRow>(r: R) -> String {
        let mut v = vec![];
        r.write_row(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rows_quote_only_when_needed() {
        assert_eq!(row(("word".to_string(), 3u64)), "word,3");
        assert_eq!(
            row(("a,b", -1i32, "say \"hi\"")),
            "\"a,b\",-1,\"say \"\"hi\"\"\""
        );
        assert_eq!(row(1.5f64), "1.5");
    }

    #[test]
    fn fields_round_trip_through_quoting() {
        let mut scratch = vec![];
        let f = split_fields("\"a,b\",-1,\"say \"\"hi\"\"\",", &mut scratch).unwrap();
        assert_eq!(f, vec!["a,b", "-1", "say \"hi\"", ""]);
        let mut scratch = vec![];
        assert!(split_fields("\"open", &mut scratch).is_err());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e = <(String, u64)>::from_fields(&["k", "x1"]).unwrap_err();
        assert!(e.contains("field 2") && e.contains("x1"), "{e}");
        let e = <(String, u64)>::from_fields(&["k"]).unwrap_err();
        assert_eq!(e, "expected 2 fields, found 1");
    }
}
