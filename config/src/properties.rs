//! A parser for Java `.properties` text, the format of Kafka's `server.properties`.
//!
//! The rules implemented are the ones of `java.util.Properties#load` that matter for broker
//! files:
//!
//! - a line whose first non-blank character is `#` or `!` is a comment (comments never continue);
//! - blank lines are ignored, leading whitespace (space, tab, form feed) is skipped;
//! - the key ends at the first unescaped `=`, `:` or whitespace; then whitespace, at most one `=`
//!   or `:`, and more whitespace are skipped; the rest of the line is the value (so `key=value`,
//!   `key: value` and `key value` are all accepted);
//! - a line ending in an odd number of backslashes continues on the next line, whose leading
//!   whitespace is dropped;
//! - escapes: `\t`, `\n`, `\r`, `\f`, `\uXXXX`, and `\x` for any other `x` means `x`
//!   (so `\\`, `\=`, `\:`, `\#`, `\ ` work);
//! - a later duplicate key replaces the earlier one.
//!
//! Values are returned exactly as written (trailing whitespace included); the typed layer trims
//! them, as Kafka's `ConfigDef` does. Pure functions, no I/O: [`crate::BrokerConfig::load`] reads
//! the file. Text that is not UTF-8 is decoded as ISO-8859-1, the encoding Java uses for
//! `Properties#load(InputStream)`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::ConfigError;

/// One `key=value` entry and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The unescaped key.
    pub key: String,
    /// The unescaped value, untrimmed at the end.
    pub value: String,
    /// 1-based line number of the first physical line of the entry.
    pub line: usize,
}

/// Decodes file bytes: UTF-8 when valid, ISO-8859-1 otherwise (Java's default for properties).
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Parses properties text into entries in file order (duplicates kept).
///
/// `path` is only used in error messages.
pub fn parse_entries(text: &str, path: &Path) -> Result<Vec<Property>, ConfigError> {
    let lines = split_lines(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start_line = i + 1;
        let first = trim_leading(lines[i]);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines.
        let mut logical = String::new();
        let mut current = first;
        loop {
            if ends_with_odd_backslashes(current) {
                logical.push_str(&current[..current.len() - 1]);
                if i < lines.len() {
                    current = trim_leading(lines[i]);
                    i += 1;
                    continue;
                }
                // A trailing backslash on the last line is dropped, as Java does.
                break;
            }
            logical.push_str(current);
            break;
        }
        let (key, value) = split_key_value(&logical);
        let err = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: start_line,
            message,
        };
        let key = unescape(key).map_err(err)?;
        let value = unescape(value).map_err(|m| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: start_line,
            message: format!("{m} (in the value of {key:?})"),
        })?;
        out.push(Property {
            key,
            value,
            line: start_line,
        });
    }
    Ok(out)
}

/// Parses properties text into a map; later duplicates win.
pub fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    Ok(parse_entries(text, path)?
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

fn split_lines(text: &str) -> Vec<&str> {
    // Natural line terminators: \n, \r, \r\n.
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                i += 1;
                if i < bytes.len() && bytes[i] == b'\n' {
                    i += 1;
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

fn trim_leading(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line (leading blanks already removed) into raw (still escaped) key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut escaped = false;
    for (idx, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if c == '=' || c == ':' || is_blank(c) {
            key_end = idx;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = trim_leading(&line[key_end..]);
    if let Some(r) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) {
        rest = trim_leading(r);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = if hex.len() == 4 {
                    u32::from_str_radix(&hex, 16).ok()
                } else {
                    None
                };
                match code.and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return Err(format!("malformed \\uxxxx escape: \\u{hex}")),
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> BTreeMap<String, String> {
        parse(text, Path::new("test.properties")).expect("valid properties")
    }

    #[test]
    fn separators_equals_colon_space() {
        let m = p("a=1\nb: 2\nc 3\nd\t=\t4\ne   :five\n");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "2");
        assert_eq!(m["c"], "3");
        assert_eq!(m["d"], "4");
        assert_eq!(m["e"], "five");
    }

    #[test]
    fn comments_and_blank_lines() {
        let m = p(
            "# comment\n! also comment\n   # indented comment\n\n   \nkey=value # not a comment\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m["key"], "value # not a comment");
    }

    #[test]
    fn comment_does_not_continue() {
        let m = p("# comment \\\nkey=value\n");
        assert_eq!(m["key"], "value");
    }

    #[test]
    fn leading_whitespace_skipped() {
        let m = p("   \t key=value\n");
        assert_eq!(m["key"], "value");
    }

    #[test]
    fn continuation_lines() {
        let m = p("listeners=PLAINTEXT://a:1,\\\n    CONTROLLER://b:2\nnext=x\n");
        assert_eq!(m["listeners"], "PLAINTEXT://a:1,CONTROLLER://b:2");
        assert_eq!(m["next"], "x");
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let m = p("path=c:\\\\\nnext=x\n");
        assert_eq!(m["path"], "c:\\");
        assert_eq!(m["next"], "x");
    }

    #[test]
    fn trailing_backslash_on_last_line() {
        let m = p("key=abc\\");
        assert_eq!(m["key"], "abc");
    }

    #[test]
    fn escapes() {
        let m = p("a\\=b=c\\:d\nsp\\ ace=1\nesc=\\t\\n\\r\\f\\\\\\q\nuni=\\u00e9\\u0041\n");
        assert_eq!(m["a=b"], "c:d");
        assert_eq!(m["sp ace"], "1");
        assert_eq!(m["esc"], "\t\n\r\u{c}\\q");
        assert_eq!(m["uni"], "éA");
    }

    #[test]
    fn malformed_unicode_escape_reports_line() {
        let err = parse("a=1\n\nb=\\u12G4\n", Path::new("server.properties")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("server.properties:3: malformed \\uxxxx escape"),
            "{msg}"
        );
        let err = parse("k\\u12=1\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().starts_with("x:1:"), "{err}");
    }

    #[test]
    fn empty_value_and_key_only() {
        let m = p("empty=\nkeyonly\n");
        assert_eq!(m["empty"], "");
        assert_eq!(m["keyonly"], "");
    }

    #[test]
    fn line_terminators() {
        let m = p("a=1\r\nb=2\rc=3");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "2");
        assert_eq!(m["c"], "3");
    }

    #[test]
    fn duplicates_later_wins_and_lines_are_tracked() {
        let e = parse_entries("a=1\n# c\nb=2\\\n  3\na=4\n", Path::new("f")).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].line, 3);
        assert_eq!(e[2].line, 5);
        let m = p("a=1\na=2\n");
        assert_eq!(m["a"], "2");
    }

    #[test]
    fn value_keeps_trailing_whitespace_and_extra_separators() {
        let m = p("a = b = c  \n");
        assert_eq!(m["a"], "b = c  ");
    }

    #[test]
    fn latin1_fallback() {
        assert_eq!(decode(b"k=caf\xe9"), "k=café");
        assert_eq!(decode("k=café".as_bytes()), "k=café");
    }
}
