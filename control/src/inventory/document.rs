//! One inventory document (JSON, XML plist or binary plist) read into a JSON value within bounds.
//!
//! Owns: the parsing limits ([`MAX_NESTING_DEPTH`], [`MAX_DOCUMENT_BYTES`],
//! [`MAX_PLIST_VALUES_PER_BYTE`]), choosing JSON or plist by the first bytes, and turning plist
//! values into JSON (dates as RFC 3339, data as lowercase hex).
//! Must not: recurse on the document's structure before its depth is known to be within
//! [`MAX_NESTING_DEPTH`] (an upload nesting 10,000 arrays used to overflow the stack and abort the
//! daemon), or build a value larger than the document's own size allows (a binary plist can refer
//! to one array many times: a few hundred bytes would otherwise expand to billions of values).
//!
//! A plist is read as the `plist` crate's event stream and built here with an explicit stack; the
//! depth and the number of values are checked at each event, so nothing is built past a limit and
//! what was built is never deeper than the limit (dropping it does not recurse far either).

use std::path::Path;

use serde_json::{Map, Value};

use super::InventoryError;

/// Deepest nesting of arrays and dictionaries accepted in an inventory document (JSON or plist).
/// Real MDM exports nest fewer than 10 levels; the bound keeps every recursive walk (shape
/// detection, the field parsers, dropping the value) far from the stack's end.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Largest inventory file read from disk (the API has its own, smaller, body limit).
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Values (array and dictionary starts and ends, keys, leaves) a plist may hold per byte of the
/// document. Written without shared references, each value takes at least one byte (a binary
/// plist's object reference) and usually four or more (XML); only a binary plist that refers to
/// the same array or dictionary many times exceeds it.
pub const MAX_PLIST_VALUES_PER_BYTE: usize = 4;

/// Reads a file as JSON, or as plist (XML or binary) when it looks like one, and returns it as a
/// JSON value (plist dates become RFC 3339 strings, data becomes lowercase hex). Files larger than
/// [`MAX_DOCUMENT_BYTES`] are refused before they are read.
pub fn read_structured(path: &Path) -> Result<Value, InventoryError> {
    let bytes = crate::input_file::read_bounded(path, MAX_DOCUMENT_BYTES).map_err(|source| {
        if source.kind() == std::io::ErrorKind::FileTooLarge {
            InventoryError::Limit {
                path: path.to_path_buf(),
                message: format!(
                    "larger than the inventory file limit of {MAX_DOCUMENT_BYTES} bytes"
                ),
            }
        } else {
            InventoryError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse_structured(&bytes, path)
}

/// [`read_structured`] on bytes already read; `path` only names errors. Nesting deeper than
/// [`MAX_NESTING_DEPTH`], or a plist holding more than [`MAX_PLIST_VALUES_PER_BYTE`] values per
/// byte, is refused as [`InventoryError::Limit`].
pub fn parse_structured(bytes: &[u8], path: &Path) -> Result<Value, InventoryError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if body.starts_with(b"bplist") || first == Some(b'<') {
        return parse_plist(body, path);
    }
    check_json_depth(body, path)?;
    serde_json::from_slice(body).map_err(|e| InventoryError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: format!("JSON: {e}"),
    })
}

/// An array or dictionary being built.
enum Open {
    Array(Vec<Value>),
    /// The dictionary so far and the key whose value comes next.
    Dict(Map<String, Value>, Option<String>),
}

/// Builds the first value of a plist's event stream, bounded in depth and size (see the module
/// documentation); trailing content after it is not read, as the `plist` crate's own reader does.
fn parse_plist(body: &[u8], path: &Path) -> Result<Value, InventoryError> {
    let binary = body.starts_with(b"bplist");
    let syntax = |message: String| {
        let (line, column) = match plist_error_offset(&message) {
            Some(offset) if !binary => line_column(body, offset),
            _ => (0, 0),
        };
        InventoryError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("plist: {message}"),
        }
    };
    let limit = |message: String| InventoryError::Limit {
        path: path.to_path_buf(),
        message,
    };
    let budget = body.len().saturating_mul(MAX_PLIST_VALUES_PER_BYTE);
    let mut stack: Vec<Open> = Vec::new();
    let mut values = 0usize;
    for event in plist::stream::Reader::new(std::io::Cursor::new(body)) {
        let event = event.map_err(|e| syntax(e.to_string()))?;
        values += 1;
        if values > budget {
            return Err(limit(format!(
                "plist holds more than the limit of {MAX_PLIST_VALUES_PER_BYTE} values per byte \
                 ({budget} for its {} bytes): it refers to the same arrays or dictionaries over \
                 and over",
                body.len()
            )));
        }
        let done = match event {
            plist::stream::Event::StartArray(_) | plist::stream::Event::StartDictionary(_) => {
                if stack.len() >= MAX_NESTING_DEPTH {
                    return Err(limit(format!(
                        "plist nests arrays and dictionaries deeper than the limit of \
                         {MAX_NESTING_DEPTH} levels"
                    )));
                }
                stack.push(match event {
                    plist::stream::Event::StartArray(_) => Open::Array(Vec::new()),
                    _ => Open::Dict(Map::new(), None),
                });
                continue;
            }
            plist::stream::Event::EndCollection => match stack.pop() {
                Some(Open::Array(items)) => Value::Array(items),
                Some(Open::Dict(map, None)) => Value::Object(map),
                Some(Open::Dict(_, Some(key))) => {
                    return Err(syntax(format!("dictionary key {key:?} has no value")));
                }
                None => return Err(syntax("a collection ends that never started".into())),
            },
            leaf => plist_leaf(leaf),
        };
        match stack.last_mut() {
            None => return Ok(done),
            Some(Open::Array(items)) => items.push(done),
            Some(Open::Dict(map, key)) => match (key.take(), done) {
                (Some(k), v) => {
                    map.insert(k, v);
                }
                (None, Value::String(k)) => *key = Some(k),
                (None, other) => {
                    return Err(syntax(format!(
                        "a dictionary key must be a string, found {}",
                        json_kind(&other)
                    )));
                }
            },
        }
    }
    Err(syntax("the document ends before its value does".into()))
}

/// A plist leaf (anything but a collection start or end) as JSON.
fn plist_leaf(event: plist::stream::Event<'_>) -> Value {
    use plist::stream::Event;
    match event {
        Event::Boolean(b) => Value::Bool(b),
        Event::Data(bytes) => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        Event::Date(date) => {
            let st: std::time::SystemTime = date.into();
            let us = match st.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
            };
            Value::String(crate::timestamp::format_rfc3339(us))
        }
        Event::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Event::Integer(i) => {
            if let Some(s) = i.as_signed() {
                Value::from(s)
            } else if let Some(u) = i.as_unsigned() {
                Value::from(u)
            } else {
                Value::Null
            }
        }
        Event::String(s) => Value::String(s.into_owned()),
        Event::Uid(u) => Value::from(u.get()),
        _ => Value::Null,
    }
}

/// `a string`, `an array` … for error messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "a null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a dictionary",
    }
}

/// Refuses JSON nested deeper than [`MAX_NESTING_DEPTH`] (brackets outside strings are counted
/// in one pass; serde_json's own recursion limit of 128 stays as a second guard).
fn check_json_depth(body: &[u8], path: &Path) -> Result<(), InventoryError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    let (line, column) = line_column(body, offset);
                    return Err(InventoryError::Limit {
                        path: path.to_path_buf(),
                        message: format!(
                            "JSON nests arrays and objects deeper than the limit of \
                             {MAX_NESTING_DEPTH} levels (line {line}, column {column})"
                        ),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset.min(bytes.len())).unwrap_or(bytes);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

/// The byte offset a plist error message reports (`... (offset 172)`), if any.
fn plist_error_offset(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("offset ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">";

    fn nested_xml(depth: usize, tail: &str) -> Vec<u8> {
        format!(
            "{XML_HEAD}{}{}{tail}</plist>\n",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        )
        .into_bytes()
    }

    /// Runs `f` on a thread with a 256 KiB stack: anything recursing once per level of a deep
    /// document overflows it and aborts the test binary.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    fn limit_message(r: Result<Value, InventoryError>) -> String {
        match r {
            Err(InventoryError::Limit { message, .. }) => message,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn plists_convert_to_json_values() {
        let mut dict = plist::Dictionary::new();
        dict.insert("name".into(), plist::Value::String("iPad".into()));
        dict.insert("n".into(), plist::Value::Integer(7.into()));
        dict.insert("ok".into(), plist::Value::Boolean(true));
        dict.insert("blob".into(), plist::Value::Data(vec![0xab, 0x01]));
        dict.insert(
            "apps".into(),
            plist::Value::Array(vec![plist::Value::Real(1.5), plist::Value::Array(vec![])]),
        );
        let value = plist::Value::Dictionary(dict);
        let expected = serde_json::json!({
            "name": "iPad", "n": 7, "ok": true, "blob": "ab01", "apps": [1.5, []]
        });
        let (mut xml, mut binary) = (Vec::new(), Vec::new());
        value.to_writer_xml(&mut xml).unwrap();
        value.to_writer_binary(&mut binary).unwrap();
        for doc in [xml, binary] {
            assert_eq!(parse_structured(&doc, Path::new("d")).unwrap(), expected);
        }
    }

    #[test]
    fn the_depth_limit_is_exact_for_plist_and_json() {
        let at = nested_xml(MAX_NESTING_DEPTH, "");
        assert!(parse_structured(&at, Path::new("d")).is_ok());
        let over = nested_xml(MAX_NESTING_DEPTH + 1, "");
        let m = limit_message(parse_structured(&over, Path::new("d")));
        assert!(m.contains("limit of 64 levels"), "{m}");
        let json = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes();
        assert!(parse_structured(&json(MAX_NESTING_DEPTH), Path::new("d")).is_ok());
        let m = limit_message(parse_structured(
            &json(MAX_NESTING_DEPTH + 1),
            Path::new("d"),
        ));
        assert!(m.contains("limit of 64 levels"), "{m}");
    }

    /// A million closed levels followed by a second value: the `plist` crate's builder would
    /// hold the whole million-deep value when it meets the trailing element, and dropping it
    /// recursed once per level. Here nothing past level 64 is built.
    #[test]
    fn a_million_levels_are_refused_on_a_small_stack() {
        let m = on_small_stack(|| {
            let doc = nested_xml(1_000_000, "<string>after</string>");
            limit_message(parse_structured(&doc, Path::new("deep.plist")))
        });
        assert!(m.contains("limit of 64 levels"), "{m}");
    }

    /// A binary plist of 20 arrays, each holding the one before it 16 times: 300 bytes that
    /// describe 16^20 values. Refused after a few thousand values instead of building them.
    #[test]
    fn a_binary_plist_that_repeats_references_is_refused_by_its_value_count() {
        let levels = 20u8;
        let mut doc = b"bplist00".to_vec();
        let mut offsets = vec![doc.len()];
        doc.extend([0x10, 0x00]); // object 0: the integer 0
        for level in 1..=levels {
            offsets.push(doc.len());
            doc.extend([0xAF, 0x10, 16]); // an array of 16 references (length as an int object)
            doc.extend(std::iter::repeat_n(level - 1, 16));
        }
        let table = doc.len();
        doc.extend(
            offsets
                .iter()
                .flat_map(|o| u16::try_from(*o).unwrap().to_be_bytes()),
        );
        doc.extend([0u8; 6]);
        doc.extend([2, 1]); // offset size, reference size
        doc.extend(u64::from(levels + 1).to_be_bytes());
        doc.extend(u64::from(levels).to_be_bytes()); // root: the last array
        doc.extend((table as u64).to_be_bytes());
        let started = std::time::Instant::now();
        let m = limit_message(parse_structured(&doc, Path::new("laughs.plist")));
        assert!(m.contains("values per byte"), "{m}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn malformed_plists_are_syntax_errors_with_a_position() {
        let doc = format!("{XML_HEAD}<dict><key>a</key></dict></plist>");
        assert!(matches!(
            parse_structured(doc.as_bytes(), Path::new("d")),
            Err(InventoryError::Syntax { .. })
        ));
        let doc = format!("{XML_HEAD}\n<array><string>x</string>");
        match parse_structured(doc.as_bytes(), Path::new("d")) {
            Err(InventoryError::Syntax { message, .. }) => {
                assert!(message.starts_with("plist: "), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
