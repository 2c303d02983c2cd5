//! Normalized text, fingerprint and literal masking.
//!
//! The normalization follows pt-query-digest's fingerprint rules: literals become `?`, `IN`
//! lists of literals collapse to `in(?+)`, multi-row `VALUES` lists to `values(?+)`, comments
//! go, keywords and bare identifiers are lower-cased, and spacing is made canonical (so `a=1`
//! and `a = 1` give one fingerprint). Bind placeholders (`?`, `$1`, `:name`, `@p`) also become
//! `?`, so a statement sent with literals and the same statement prepared with placeholders
//! share a fingerprint. Quoted identifiers are kept as written (their case is significant).

use super::lexer::{Tok, Token};
use super::MAX_NORMALIZED_LEN;

/// Keywords after which a `+`/`-` before a number is a sign, not an operator.
const SIGN_CONTEXT: &[&str] = &[
    "SELECT", "WHERE", "AND", "OR", "NOT", "BY", "VALUES", "IN", "THEN", "ELSE", "WHEN", "RETURN",
    "LIMIT", "OFFSET", "BETWEEN", "LIKE", "IS", "ON", "SET", "AS", "CASE",
];

fn is_operator_char(c: u8) -> bool {
    matches!(
        c,
        b'<' | b'>'
            | b'='
            | b'!'
            | b'|'
            | b'&'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'^'
            | b'~'
            | b':'
            | b'@'
            | b'#'
    )
}

fn first_byte(sql: &str, t: &Token) -> u8 {
    t.text(sql).as_bytes().first().copied().unwrap_or(0)
}

fn value_like(t: &Token) -> bool {
    matches!(t.tok, Tok::Str | Tok::Number | Tok::Param)
}

/// Output pieces, with the class the spacing rules need.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// A word, identifier or `?`.
    Word,
    Open,
    Close,
    Comma,
    Dot,
    Semi,
    Operator,
    /// `in(?+)` / `values(?+)`: word-like on the left, closed on the right.
    Collapsed,
}

struct Writer {
    out: String,
    last: Option<Piece>,
    full: bool,
}

impl Writer {
    fn push(&mut self, piece: Piece, text: &str) {
        self.push_as(piece, text, false);
    }

    /// Push `text`, ASCII-lower-cased when `lower` (words: no temporary string per word).
    fn push_as(&mut self, piece: Piece, text: &str, lower: bool) {
        if self.full {
            return;
        }
        let space = match (self.last, piece) {
            (None, _) => false,
            (_, Piece::Comma | Piece::Close | Piece::Dot | Piece::Semi) => false,
            (Some(Piece::Open | Piece::Dot), _) => false,
            (Some(Piece::Word | Piece::Close), Piece::Open) => false,
            (Some(Piece::Word), Piece::Collapsed) => true,
            _ => true,
        };
        if self.out.len() + text.len() + 1 > MAX_NORMALIZED_LEN {
            self.full = true;
            return;
        }
        if space {
            self.out.push(' ');
        }
        let start = self.out.len();
        self.out.push_str(text);
        if lower {
            // ASCII case mapping keeps the UTF-8 valid.
            if let Some(pushed) = self.out.get_mut(start..) {
                pushed.make_ascii_lowercase();
            }
        }
        self.last = Some(piece);
    }
}

/// Index after the parenthesized group opening at `i`, if it closes.
fn group_end(sql: &str, toks: &[Token], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while let Some(t) = toks.get(i) {
        if t.is_punct(sql, b'(') {
            depth += 1;
        } else if t.is_punct(sql, b')') {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// `( v, v, … )` with only literals, placeholders, signs and commas: the index after `)`.
fn literal_list_end(sql: &str, toks: &[Token], i: usize) -> Option<usize> {
    if !toks.get(i)?.is_punct(sql, b'(') {
        return None;
    }
    let mut j = i + 1;
    let mut values = 0;
    loop {
        let t = toks.get(j)?;
        if t.is_punct(sql, b')') {
            return (values > 0).then_some(j + 1);
        }
        if value_like(t) {
            values += 1;
        } else if !(t.is_punct(sql, b',')
            || t.is_punct(sql, b'-')
            || t.is_punct(sql, b'+')
            || t.is_kw(sql, "NULL"))
        {
            return None;
        }
        j += 1;
    }
}

/// The normalized text of `sql` (see the module docs).
/// `secrets` are indices of tokens that are passwords (sorted): they become `?` whatever their
/// class.
pub fn normalize(sql: &str, toks: &[Token], secrets: &[usize]) -> String {
    let mut w = Writer {
        out: String::with_capacity(sql.len().min(MAX_NORMALIZED_LEN)),
        last: None,
        full: false,
    };
    let mut i = 0usize;
    while let Some(t) = toks.get(i) {
        if secrets.binary_search(&i).is_ok() {
            w.push(Piece::Word, "?");
            i += 1;
            continue;
        }
        match t.tok {
            Tok::Word => {
                let text = t.text(sql);
                let next_open = toks.get(i + 1).is_some_and(|n| n.is_punct(sql, b'('));
                if next_open && text.eq_ignore_ascii_case("IN") {
                    if let Some(end) = literal_list_end(sql, toks, i + 1) {
                        w.push(Piece::Collapsed, "in(?+)");
                        i = end;
                        continue;
                    }
                }
                if next_open
                    && (text.eq_ignore_ascii_case("VALUES") || text.eq_ignore_ascii_case("VALUE"))
                {
                    // Every row tuple, separated by commas.
                    let mut end = i + 1;
                    loop {
                        // A tuple cut by the end of the text ends the list.
                        let e = group_end(sql, toks, end).unwrap_or(toks.len());
                        end = e;
                        if toks.get(end).is_some_and(|c| c.is_punct(sql, b','))
                            && toks.get(end + 1).is_some_and(|o| o.is_punct(sql, b'('))
                        {
                            end += 1;
                        } else {
                            break;
                        }
                    }
                    if end > i + 1 {
                        w.push(Piece::Collapsed, "values(?+)");
                        i = end;
                        continue;
                    }
                }
                w.push_as(Piece::Word, text, true);
            }
            Tok::QuotedIdent => w.push(Piece::Word, t.text(sql)),
            Tok::Str | Tok::Number | Tok::Param => w.push(Piece::Word, "?"),
            Tok::Punct => {
                let c = first_byte(sql, t);
                match c {
                    b'(' => w.push(Piece::Open, "("),
                    b')' => w.push(Piece::Close, ")"),
                    b',' => w.push(Piece::Comma, ","),
                    b'.' => w.push(Piece::Dot, "."),
                    b';' => {
                        // A trailing `;` (and anything only whitespace after it) is dropped.
                        if toks.get(i + 1).is_some() {
                            w.push(Piece::Semi, ";");
                        }
                    }
                    _ if is_operator_char(c) => {
                        // A sign before a number folds into the literal.
                        if matches!(c, b'-' | b'+')
                            && toks
                                .get(i + 1)
                                .is_some_and(|n| n.tok == Tok::Number && !n.space_before)
                            && sign_position(sql, toks, i)
                        {
                            w.push(Piece::Word, "?");
                            i += 2;
                            continue;
                        }
                        // A run of operator characters with nothing between them is one operator.
                        let mut j = i + 1;
                        while toks.get(j).is_some_and(|n| {
                            n.tok == Tok::Punct
                                && !n.space_before
                                && is_operator_char(first_byte(sql, n))
                        }) {
                            j += 1;
                        }
                        let end = toks.get(j - 1).map_or(t.end, |l| l.end);
                        w.push(Piece::Operator, sql.get(t.start..end).unwrap_or_default());
                        i = j;
                        continue;
                    }
                    _ => w.push(Piece::Operator, t.text(sql)),
                }
            }
        }
        i += 1;
    }
    w.out
}

/// True when the `+`/`-` at `i` is a sign (start of text, after an operator, an opening
/// parenthesis, a comma, or a keyword such as WHERE or AND).
fn sign_position(sql: &str, toks: &[Token], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).and_then(|p| toks.get(p)) else {
        return true;
    };
    match prev.tok {
        Tok::Punct => !prev.is_punct(sql, b')'),
        Tok::Word => SIGN_CONTEXT
            .iter()
            .any(|k| prev.text(sql).eq_ignore_ascii_case(k)),
        _ => false,
    }
}

/// 64-bit FNV-1a of the normalized text, as 16 hex digits: stable across runs, versions and
/// machines (no seeded hasher).
pub fn fingerprint(normalized: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in normalized.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `sql` with every literal replaced by `?`, everything else as written.
pub fn mask_literals(sql: &str, toks: &[Token]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut pos = 0usize;
    for t in toks.iter().filter(|t| t.is_literal()) {
        out.push_str(sql.get(pos..t.start).unwrap_or_default());
        out.push('?');
        pos = t.end;
    }
    out.push_str(sql.get(pos..).unwrap_or_default());
    out
}
