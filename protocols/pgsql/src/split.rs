//! Splits the text of a simple Query message into statements, the way PostgreSQL's lexer sees
//! `;` ("Lexical Structure" in the PostgreSQL documentation): not inside
//! - string constants `'…'` (a quote is doubled to include it; in escape strings `E'…'`, and in
//!   all strings when `standard_conforming_strings` is off, `\` escapes the next character),
//! - quoted identifiers `"…"` (doubled `"`),
//! - dollar-quoted strings `$tag$…$tag$` (the tag is empty or an identifier that does not start
//!   with a digit; a `$` that continues an identifier or starts `$1` opens nothing),
//! - `--` comments (to the end of the line) and `/* … */` comments, which nest,
//! - parentheses (a `CREATE RULE … DO (a; b)` action list is one statement).
//!
//! Runs on the decoded UTF-8 text, so a multi-byte character whose trail byte is `\` or `'` in
//! the client encoding (SJIS, BIG5, GBK) cannot confuse it. `BEGIN ATOMIC … END` bodies are not
//! recognised; the parser detects the miscount against the server's responses and falls back to
//! one record for the whole text.

use std::ops::Range;

/// Byte ranges of the statements in `sql`, trimmed of whitespace and of comments at either
/// end; statements holding nothing but whitespace, comments or `;` are left out (the server
/// skips them too). `None` when there are more than `max`.
pub fn split(sql: &str, max: usize, standard_strings: bool) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut over = false;
    visit(sql, standard_strings, |r| {
        if out.len() == max {
            over = true;
            return false;
        }
        out.push(r);
        true
    });
    (!over).then_some(out)
}

/// As [`split`], but `None` unless there are at least two statements (and at most `max`):
/// the common single-statement text costs no allocation.
pub fn split_multi(sql: &str, max: usize, standard_strings: bool) -> Option<Vec<Range<usize>>> {
    // Fast path: no `;` at all, or only trailing ones after the last content.
    let trimmed = sql.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    if !trimmed.contains(';') {
        return None;
    }
    let mut first: Option<Range<usize>> = None;
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut over = false;
    visit(sql, standard_strings, |r| {
        match first.take() {
            None if out.is_empty() => first = Some(r),
            Some(f) => {
                out.reserve(4);
                out.push(f);
                out.push(r);
            }
            None => {
                if out.len() == max {
                    over = true;
                    return false;
                }
                out.push(r);
            }
        }
        true
    });
    (!over && out.len() > 1 && out.len() <= max).then_some(out)
}

/// Call `f` with each statement's range, in order, until it returns false.
fn visit(sql: &str, standard_strings: bool, mut f: impl FnMut(Range<usize>) -> bool) {
    let b = sql.as_bytes();
    let at = |i: usize| b.get(i).copied();
    // First and one-past-last byte of content (not whitespace or comment) of this statement.
    let mut first: Option<usize> = None;
    let mut last = 0usize;
    let mut depth = 0u32;
    let mut i = 0usize;
    while let Some(c) = at(i) {
        let start = i;
        match c {
            b'\'' => {
                let escapes = !standard_strings
                    || (start >= 1
                        && matches!(at(start - 1), Some(b'E' | b'e'))
                        && (start < 2 || !at(start - 2).is_some_and(ident_char)));
                i = end_of_quoted(b, i + 1, b'\'', escapes);
            }
            b'"' => i = end_of_quoted(b, i + 1, b'"', false),
            b'$' if start == 0 || !at(start - 1).is_some_and(ident_char) => {
                i = match dollar_tag(b, i) {
                    Some(tag_end) => {
                        let tag = b.get(i..tag_end).unwrap_or_default();
                        match find(b, tag_end, tag) {
                            Some(close) => close + tag.len(),
                            None => b.len(),
                        }
                    }
                    None => i + 1,
                };
            }
            b'-' if at(i + 1) == Some(b'-') => {
                while at(i).is_some_and(|d| d != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' if at(i + 1) == Some(b'*') => {
                let mut nest = 0u32;
                while let Some(d) = at(i) {
                    if d == b'/' && at(i + 1) == Some(b'*') {
                        nest += 1;
                        i += 2;
                    } else if d == b'*' && at(i + 1) == Some(b'/') {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' if depth == 0 => {
                if let Some(s) = first.take() {
                    if !f(s..last) {
                        return;
                    }
                }
                i += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => i += 1,
        }
        first.get_or_insert(start);
        last = i.min(b.len());
    }
    if let Some(s) = first {
        f(s..last);
    }
}

/// Characters that continue an identifier: letters, digits, `_`, `$` and any non-ASCII byte.
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Index just past the closing `quote` of a quoted token whose body starts at `i`.
fn end_of_quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    while let Some(&d) = b.get(i) {
        i += 1;
        if escapes && d == b'\\' {
            i += 1;
        } else if d == quote {
            if b.get(i) == Some(&quote) {
                i += 1;
            } else {
                return i;
            }
        }
    }
    b.len()
}

/// If a dollar-quote delimiter `$tag$` starts at `i`, the index just past it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    match b.get(j) {
        Some(b'$') => return Some(j + 1),
        Some(&c) if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {}
        _ => return None,
    }
    while let Some(&c) = b.get(j) {
        if c == b'$' {
            return Some(j + 1);
        }
        if !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80) {
            return None;
        }
        j += 1;
    }
    None
}

/// First occurrence of `pat` in `b` at or after `from`.
fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    let hay = b.get(from..)?;
    if pat.is_empty() || hay.len() < pat.len() {
        return None;
    }
    hay.windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sql: &str) -> Vec<&str> {
        split(sql, 256, true)
            .unwrap()
            .into_iter()
            .map(|r| &sql[r])
            .collect()
    }

    #[test]
    fn plain_statements() {
        assert_eq!(
            parts("BEGIN; SELECT 1;COMMIT"),
            vec!["BEGIN", "SELECT 1", "COMMIT"]
        );
        assert_eq!(parts("select 1;"), vec!["select 1"]);
        assert_eq!(parts(" ; ;; "), Vec::<&str>::new());
        assert_eq!(parts(""), Vec::<&str>::new());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            parts("select 'a;b''c'; select 2"),
            vec!["select 'a;b''c'", "select 2"]
        );
        assert_eq!(
            parts(r"select E'a\';b'; select 2"),
            vec![r"select E'a\';b'", "select 2"]
        );
        // Without the E prefix, a backslash is an ordinary character.
        assert_eq!(
            parts(r"select 'a\'; select 2"),
            vec![r"select 'a\'", "select 2"]
        );
        // …unless standard_conforming_strings is off.
        assert_eq!(
            split(r"select 'a\';b'; select 2", 256, false)
                .unwrap()
                .len(),
            2
        );
        // An identifier ending in e before a quote is not an E prefix.
        assert_eq!(parts(r#"select "x;y"""; select 2"#).len(), 2);
    }

    #[test]
    fn dollar_quotes() {
        let f = "create function f() returns int as $body$ begin; return 1; end $body$ language plpgsql; select f()";
        assert_eq!(parts(f).len(), 2);
        assert_eq!(parts("select $$a;b$$; select 2").len(), 2);
        // $1 is a parameter and a$b$ an identifier: no quoting starts.
        assert_eq!(parts("select $1; select a$b$c; select 3").len(), 3);
        // Nested different tags.
        assert_eq!(parts("select $a$ $b$ ; $b$ $a$; select 2").len(), 2);
    }

    #[test]
    fn comments_and_parens() {
        assert_eq!(
            parts("-- first;\nselect 1; /* a /* nested; */ still; */ select 2 -- end;"),
            vec!["select 1", "select 2"]
        );
        assert_eq!(
            parts("create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); select 1")
                .len(),
            2
        );
        // A comment-only statement is no statement.
        assert_eq!(parts("/* only */; select 1"), vec!["select 1"]);
    }

    #[test]
    fn multi_only() {
        assert_eq!(split_multi("select 1;", 256, true), None);
        assert_eq!(split_multi("select ';'", 256, true), None);
        assert_eq!(split_multi("a; b", 256, true), Some(vec![0..1, 3..4]));
        assert_eq!(split_multi("a; b; c", 2, true), None);
        assert_eq!(split_multi("a; b; c", 3, true).unwrap().len(), 3);
    }

    #[test]
    fn bounded() {
        assert!(split("a;b;c", 2, true).is_none());
        assert_eq!(split("a;b", 2, true).unwrap().len(), 2);
        // Unterminated constructs run to the end without panicking.
        assert_eq!(parts("select 'abc; select 2").len(), 1);
        assert_eq!(parts("select $x$ abc; select 2").len(), 1);
        assert_eq!(parts("select /* abc; select 2").len(), 1);
    }
}
