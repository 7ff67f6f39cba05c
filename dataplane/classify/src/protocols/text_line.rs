//! Line handling for the text protocol parsers (SSH banners, SMTP, IMAP, POP3, FTP, IRC, SIP,
//! RTSP).
//!
//! Owns: finding complete lines at the start of a buffer within a caller-given bound, and
//! case-insensitive byte comparisons. Must not: allocate, look further than the bound, or decide
//! anything about a protocol.

/// The first line of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A line ended by LF (a CR right before the LF is removed); every byte is text.
    Complete(&'a [u8]),
    /// No line end yet; the bytes so far are text and fit the bound.
    Partial,
    /// Not a text line within the bound (control bytes, or too long).
    Invalid,
}

/// True for bytes that may appear inside a protocol text line: printable ASCII, tab, and
/// bytes of UTF-8 sequences.
pub(crate) fn is_text(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

/// The first line of `data`, at most `max` bytes long (terminator not counted).
pub(crate) fn first_line(data: &[u8], max: usize) -> Line<'_> {
    split_line(data, max).0
}

/// The first line of `data` and the bytes after its terminator (empty unless complete).
pub(crate) fn split_line(data: &[u8], max: usize) -> (Line<'_>, &[u8]) {
    let mut prev_cr = false;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            let end = if prev_cr { i - 1 } else { i };
            if end > max {
                return (Line::Invalid, &[]);
            }
            let line = data.get(..end).unwrap_or_default();
            let rest = data.get(i + 1..).unwrap_or_default();
            return (Line::Complete(line), rest);
        }
        if prev_cr {
            // A CR not followed by LF.
            return (Line::Invalid, &[]);
        }
        if i > max {
            return (Line::Invalid, &[]);
        }
        if b == b'\r' {
            prev_cr = true;
        } else if !is_text(b) {
            return (Line::Invalid, &[]);
        }
    }
    (Line::Partial, &[])
}

/// Iterator over the complete lines at the start of a buffer; it stops at the first partial or
/// invalid line, or after `max_lines` lines.
pub(crate) struct Lines<'a> {
    rest: &'a [u8],
    max_len: usize,
    left: usize,
}

impl<'a> Lines<'a> {
    /// Lines of `data`, each at most `max_len` bytes, at most `max_lines` of them.
    pub(crate) fn new(data: &'a [u8], max_len: usize, max_lines: usize) -> Lines<'a> {
        Lines {
            rest: data,
            max_len,
            left: max_lines,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 || self.rest.is_empty() {
            return None;
        }
        self.left -= 1;
        match split_line(self.rest, self.max_len) {
            (Line::Complete(line), rest) => {
                self.rest = rest;
                Some(line)
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

/// True when `hay` starts with `prefix`, ASCII case-insensitively.
pub(crate) fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// True when `hay` contains `needle`, ASCII case-insensitively.
pub(crate) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// True when `data` (shorter than `full`) could still become `full`: it is a case-insensitive
/// prefix of it.
pub(crate) fn is_prefix_ci_of(data: &[u8], full: &[u8]) -> bool {
    !data.is_empty() && data.len() < full.len() && starts_with_ci(full, data)
}

/// Splits `line` at the first space: the word before it and the rest after it (`None` when the
/// line has no space).
pub(crate) fn split_word(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (line.get(..i).unwrap_or_default(), line.get(i + 1..)),
        None => (line, None),
    }
}

/// True for a three-digit reply code followed by a space, a dash or the end of the line.
pub(crate) fn has_reply_code(line: &[u8], code: &[u8; 3]) -> bool {
    line.get(..3) == Some(code.as_slice()) && matches!(line.get(3), None | Some(b' ') | Some(b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_complete_partial_invalid() {
        assert_eq!(first_line(b"abc\r\nrest", 10), Line::Complete(b"abc"));
        assert_eq!(first_line(b"abc\nrest", 10), Line::Complete(b"abc"));
        assert_eq!(first_line(b"abc", 10), Line::Partial);
        assert_eq!(first_line(b"abc\r", 10), Line::Partial);
        assert_eq!(first_line(b"abc\rx", 10), Line::Invalid);
        assert_eq!(first_line(b"a\x00c\r\n", 10), Line::Invalid);
        assert_eq!(first_line(b"abcdefghijk", 5), Line::Invalid);
        assert_eq!(first_line(b"abcdef\r\n", 5), Line::Invalid);
        assert_eq!(first_line(b"abcde\r\n", 5), Line::Complete(b"abcde"));
        assert_eq!(first_line(b"\r\n", 5), Line::Complete(b""));
    }

    #[test]
    fn lines_stop_at_partial() {
        let v: Vec<&[u8]> = Lines::new(b"a\r\nb\nc", 10, 10).collect();
        assert_eq!(v, vec![b"a".as_slice(), b"b".as_slice()]);
        let v: Vec<&[u8]> = Lines::new(b"a\r\nb\nc\n", 10, 2).collect();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn comparisons() {
        assert!(starts_with_ci(b"ehlo x", b"EHLO "));
        assert!(!starts_with_ci(b"EHL", b"EHLO"));
        assert!(contains_ci(b"220 mx ESMTP ready", b"smtp"));
        assert!(!contains_ci(b"", b"smtp"));
        assert!(is_prefix_ci_of(b"ss", b"SSH-"));
        assert!(!is_prefix_ci_of(b"SSH-", b"SSH-"));
        assert_eq!(
            split_word(b"USER bob"),
            (b"USER".as_slice(), Some(b"bob".as_slice()))
        );
        assert_eq!(split_word(b"CAPA"), (b"CAPA".as_slice(), None));
        assert!(has_reply_code(b"220 x", b"220"));
        assert!(has_reply_code(b"220-x", b"220"));
        assert!(has_reply_code(b"220", b"220"));
        assert!(!has_reply_code(b"2200", b"220"));
    }
}
