//! A dialect-aware SQL tokenizer that never fails.
//!
//! It only has to find token *boundaries* well enough for classification, object extraction,
//! normalization and redaction: what is a string literal, a quoted identifier, a comment, a
//! number, a placeholder, a word, a punctuation character. Anything it does not recognise becomes
//! a one-character [`Tok::Punct`]; an unterminated literal or comment runs to the end of the text
//! (statements cut by a capture limit end that way).
//!
//! Every boundary is at an ASCII byte, so token ranges are always valid `str` boundaries.

use super::Dialect;

/// Token class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// Keyword or bare identifier (letters, digits, `_`, `$`, `#`, any non-ASCII character).
    Word,
    /// Quoted identifier: `"x"` (not MySQL), `` `x` `` (MySQL), `[x]` (T-SQL).
    QuotedIdent,
    /// String literal: `'…'`, `N'…'`, `E'…'`, `X'…'`, `B'…'`, `U&'…'`, `$tag$…$tag$` (PostgreSQL),
    /// `q'[…]'` (Oracle), `"…"` (MySQL).
    Str,
    /// Numeric literal, including `0x…` and `0b…`.
    Number,
    /// Bind placeholder: `?`, `$1`, `:name`, `:1`, `@name` (T-SQL variables and parameters).
    Param,
    /// Any other single character (operators, parentheses, commas, semicolons).
    Punct,
}

/// One token: its class and byte range in the text. `space_before` says whether whitespace or a
/// comment separated it from the previous token (normalization keeps one space there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
    pub space_before: bool,
}

impl Token {
    /// The token's text.
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or_default()
    }

    /// True for a word equal to `kw` (ASCII case-insensitive).
    pub fn is_kw(&self, sql: &str, kw: &str) -> bool {
        self.tok == Tok::Word && self.text(sql).eq_ignore_ascii_case(kw)
    }

    /// True for punctuation `c`.
    pub fn is_punct(&self, sql: &str, c: u8) -> bool {
        self.tok == Tok::Punct && self.text(sql).as_bytes().first() == Some(&c)
    }

    /// True for a literal value (string or number).
    pub fn is_literal(&self) -> bool {
        matches!(self.tok, Tok::Str | Tok::Number)
    }
}

/// Tokens of `sql`, at most `max` (the rest of the text is not tokenized; `truncated` says so).
pub struct Tokens {
    pub list: Vec<Token>,
    pub truncated: bool,
}

/// Bytes that continue a word: ASCII letters and digits, `_`, `$`, `#`, and every byte of a
/// multi-byte UTF-8 character. A table: the tokenizer asks this of almost every byte.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'#' || b >= 0x80;
        i += 1;
    }
    t
};

fn is_word_byte(b: u8) -> bool {
    WORD_BYTE[usize::from(b)]
}

/// End of the run of word bytes starting at `from`.
fn word_end(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|r| r.iter().position(|&c| !is_word_byte(c)))
        .map_or(b.len(), |p| from + p)
}

/// Tokenize `sql` in `dialect`, keeping at most `max` tokens.
pub fn tokenize(sql: &str, dialect: Dialect, max: usize) -> Tokens {
    let mut list = Vec::new();
    let truncated = tokenize_into(sql, dialect, max, &mut list);
    Tokens { list, truncated }
}

/// [`tokenize`] into a caller's buffer (cleared first; callers that analyse statement after
/// statement reuse one). Returns `truncated`.
pub fn tokenize_into(sql: &str, dialect: Dialect, max: usize, list: &mut Vec<Token>) -> bool {
    let b = sql.as_bytes();
    let n = b.len();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    list.clear();
    list.reserve((n / 4).min(max));
    let mut i = 0;
    let mut space = false;
    // Inside a MySQL executable comment `/*! … */`: its content is SQL the server runs.
    let mut exec_comment = false;
    while i < n {
        if list.len() >= max {
            return true;
        }
        let c = at(i);
        // Whitespace.
        if c.is_ascii_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        // Comments. MySQL's `--` starts one only when a space or control character follows
        // (MySQL Reference Manual, "Comments"): `id=1--1` is `1 - -1`, and taking it for a
        // comment would hide what comes after it (`… UNION SELECT … FROM mysql.user`).
        if c == b'-'
            && at(i + 1) == b'-'
            && (dialect != Dialect::MySql || i + 2 >= n || at(i + 2) <= b' ')
        {
            i = line_end(b, i);
            space = true;
            continue;
        }
        if c == b'#' && dialect == Dialect::MySql {
            i = line_end(b, i);
            space = true;
            continue;
        }
        if c == b'/' && at(i + 1) == b'*' {
            let mariadb = at(i + 2) == b'M' && at(i + 3) == b'!';
            if dialect == Dialect::MySql && (at(i + 2) == b'!' || mariadb) {
                // `/*!` [version digits] … `*/`: executed by MySQL, so tokenized; `/*M!` …
                // `*/` likewise by MariaDB.
                i += if mariadb { 4 } else { 3 };
                while at(i).is_ascii_digit() {
                    i += 1;
                }
                exec_comment = true;
                space = true;
                continue;
            }
            i = block_comment_end(b, i, dialect != Dialect::MySql);
            space = true;
            continue;
        }
        if exec_comment && c == b'*' && at(i + 1) == b'/' {
            exec_comment = false;
            i += 2;
            space = true;
            continue;
        }
        let start = i;
        let tok = match c {
            b'\'' => {
                i = quoted_end(b, i, b'\'', dialect == Dialect::MySql);
                Tok::Str
            }
            b'"' if dialect == Dialect::MySql => {
                i = quoted_end(b, i, b'"', true);
                Tok::Str
            }
            b'"' => {
                i = quoted_end(b, i, b'"', false);
                Tok::QuotedIdent
            }
            b'`' if dialect == Dialect::MySql => {
                i = quoted_end(b, i, b'`', false);
                Tok::QuotedIdent
            }
            b'[' if dialect == Dialect::TSql => {
                i = quoted_end(b, i, b']', false);
                Tok::QuotedIdent
            }
            b'0'..=b'9' => {
                i = number_end(b, i);
                Tok::Number
            }
            b'.' if at(i + 1).is_ascii_digit() => {
                i = number_end(b, i);
                Tok::Number
            }
            b'?' => {
                i += 1;
                Tok::Param
            }
            b'$' if dialect == Dialect::Postgres && at(i + 1).is_ascii_digit() => {
                i += 1;
                while at(i).is_ascii_digit() {
                    i += 1;
                }
                Tok::Param
            }
            b'$' if dialect == Dialect::Postgres => match dollar_quote_end(b, i) {
                Some(e) => {
                    i = e;
                    Tok::Str
                }
                None => {
                    i += 1;
                    Tok::Punct
                }
            },
            b':' if dialect == Dialect::Oracle
                && (is_word_byte(at(i + 1)) || at(i + 1) == b'"') =>
            {
                i += 1;
                if at(i) == b'"' {
                    i = quoted_end(b, i, b'"', false);
                } else {
                    while is_word_byte(at(i)) {
                        i += 1;
                    }
                }
                Tok::Param
            }
            // MySQL user and system variables: @name, @@name, @@session.name (a word).
            b'@' if dialect == Dialect::MySql
                && (is_word_byte(at(i + 1)) || (at(i + 1) == b'@' && is_word_byte(at(i + 2)))) =>
            {
                i += if at(i + 1) == b'@' { 2 } else { 1 };
                while is_word_byte(at(i)) {
                    i += 1;
                }
                Tok::Word
            }
            b'@' if dialect == Dialect::TSql => {
                i += 1;
                while is_word_byte(at(i)) || at(i) == b'@' {
                    i += 1;
                }
                Tok::Param
            }
            _ if is_word_byte(c) => {
                // Prefixed string literals: N'…' E'…' X'…' B'…' U&'…', Oracle q'…' and nq'…'.
                if let Some(e) = prefixed_string_end(b, i, dialect) {
                    i = e;
                    Tok::Str
                } else {
                    i = word_end(b, i + 1);
                    Tok::Word
                }
            }
            _ => {
                // One character; a multi-byte UTF-8 character never gets here (≥ 0x80 is a word
                // byte), so `i + 1` is a char boundary.
                i += 1;
                Tok::Punct
            }
        };
        list.push(Token {
            tok,
            start,
            end: i.min(n),
            space_before: space,
        });
        space = false;
    }
    false
}

fn line_end(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |p| from + p + 1)
}

/// End of a `/* … */` comment starting at `from`; PostgreSQL and T-SQL nest them.
fn block_comment_end(b: &[u8], from: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while let (Some(&c0), Some(&c1)) = (b.get(i), b.get(i + 1)) {
        match (c0, c1) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
                if !nested && depth > 1 {
                    depth = 1;
                }
            }
            (b'*', b'/') => {
                depth = depth.saturating_sub(1);
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// End of a quoted token opened at `from` by `b[from]` and closed by `close`; a doubled closer is
/// an escaped one; `backslash` makes `\x` an escape (MySQL strings, PostgreSQL E'' strings).
fn quoted_end(b: &[u8], from: usize, close: u8, backslash: bool) -> usize {
    let mut i = from + 1;
    while let Some(&c) = b.get(i) {
        if backslash && c == b'\\' {
            i += 2;
            continue;
        }
        if c == close {
            if b.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn number_end(b: &[u8], from: usize) -> usize {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut i = from;
    if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X') && at(i + 2).is_ascii_hexdigit() {
        i += 2;
        while at(i).is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    if at(i) == b'0' && matches!(at(i + 1), b'b' | b'B') && matches!(at(i + 2), b'0' | b'1') {
        i += 2;
        while matches!(at(i), b'0' | b'1') {
            i += 1;
        }
        return i;
    }
    while at(i).is_ascii_digit() || at(i) == b'_' {
        i += 1;
    }
    if at(i) == b'.' && at(i + 1) != b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(at(i), b'e' | b'E')
        && (at(i + 1).is_ascii_digit()
            || (matches!(at(i + 1), b'+' | b'-') && at(i + 2).is_ascii_digit()))
    {
        i += 2;
        while at(i).is_ascii_digit() {
            i += 1;
        }
    }
    // Oracle's binary float/double suffixes, T-SQL money has none.
    if matches!(at(i), b'f' | b'F' | b'd' | b'D') && !is_word_byte(at(i + 1)) {
        i += 1;
    }
    i
}

/// `$tag$ … $tag$` (PostgreSQL, §4.1.2.4): the tag is empty or an identifier without `$`.
fn dollar_quote_end(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from + 1..)?;
    let tag_len = rest.iter().position(|&c| c == b'$')?;
    let tag = rest.get(..tag_len)?;
    if tag.first().is_some_and(u8::is_ascii_digit)
        || !tag
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
    {
        return None;
    }
    let delim = b.get(from..from + tag_len + 2)?;
    let body_start = from + tag_len + 2;
    let body = b.get(body_start..).unwrap_or_default();
    Some(
        body.windows(delim.len())
            .position(|w| w == delim)
            .map_or(b.len(), |p| body_start + p + delim.len()),
    )
}

/// A string literal with a letter prefix at `from`, if there is one: its end.
fn prefixed_string_end(b: &[u8], from: usize, dialect: Dialect) -> Option<usize> {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    // Every prefix form has `'`, `&` (U&'') or `q` (nq'') as its second byte: most words stop
    // here.
    if !matches!(at(from + 1), b'\'' | b'&' | b'q' | b'Q') {
        return None;
    }
    let c = at(from).to_ascii_lowercase();
    // Oracle alternative quoting q'<delim>…<delim>'' (also nq'…').
    if dialect == Dialect::Oracle {
        let q = if c == b'q' {
            Some(from + 1)
        } else if c == b'n' && at(from + 1).eq_ignore_ascii_case(&b'q') {
            Some(from + 2)
        } else {
            None
        };
        if let Some(q) = q {
            if at(q) == b'\'' && at(q + 1) != 0 {
                let open = at(q + 1);
                let close = match open {
                    b'[' => b']',
                    b'{' => b'}',
                    b'(' => b')',
                    b'<' => b'>',
                    o => o,
                };
                let mut i = q + 2;
                while i < b.len() {
                    if at(i) == close && at(i + 1) == b'\'' {
                        return Some(i + 2);
                    }
                    i += 1;
                }
                return Some(b.len());
            }
        }
    }
    // U&'…' (PostgreSQL Unicode escapes).
    if c == b'u' && at(from + 1) == b'&' && at(from + 2) == b'\'' {
        return Some(quoted_end(b, from + 2, b'\'', false));
    }
    if at(from + 1) != b'\'' {
        return None;
    }
    match c {
        b'n' | b'x' | b'b' => Some(quoted_end(b, from + 1, b'\'', dialect == Dialect::MySql)),
        b'e' if dialect == Dialect::Postgres => Some(quoted_end(b, from + 1, b'\'', true)),
        _ => None,
    }
}
