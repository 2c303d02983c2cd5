//! Passwords written inside SQL text, found so they never reach any output.
//!
//! Shapes covered (keywords case-insensitive):
//! - `IDENTIFIED BY x` (MySQL, MariaDB, Oracle; also `… BY PASSWORD 'hash'`, Oracle's
//!   `… BY VALUES 'verifier'` and `… REPLACE old`), `IDENTIFIED WITH plugin BY x | AS 'hash'`,
//!   MariaDB `IDENTIFIED VIA plugin USING PASSWORD('x') | 'hash'`;
//! - `PASSWORD x`, `PASSWORD = x`, `PASSWORD('x')` and any word ending in `_PASSWORD`
//!   (PostgreSQL `CREATE/ALTER ROLE … [ENCRYPTED] PASSWORD 'x'`, T-SQL `CREATE/ALTER LOGIN …
//!   WITH PASSWORD = 'x' [OLD_PASSWORD = 'y']`, MySQL `SET PASSWORD [FOR u] = 'x' [REPLACE 'y']`,
//!   `CHANGE MASTER TO MASTER_PASSWORD = 'x'`, foreign-server `OPTIONS (password 'x')`);
//! - T-SQL named arguments whose name contains `passw` or `pwd` (`@passwd = 'x'`,
//!   `@rmtpassword = 'x'`), and the positional password arguments of `sp_addlogin` (2nd),
//!   `sp_password` (1st, 2nd; also `@old`, `@new`), `sp_addlinkedsrvlogin` (5th) and
//!   `sp_setapprole` (2nd), also when the procedure is named in brackets (`[sp_addlogin]`).
//!
//! A secret is a literal, a quoted identifier, a bind placeholder (its bound value is then
//! secret too), or — only right after `IDENTIFIED BY` — a bare word (Oracle's unquoted
//! password; in other dialects a mistake, but the text travels all the same).

use super::lexer::{Tok, Token};
use super::{Dialect, SecretParam};

/// Token indices holding secrets, and the placeholders whose bound values are secret.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    pub tokens: Vec<usize>,
    pub params: Vec<SecretParam>,
}

/// Positional password arguments of T-SQL system procedures (1-based).
const PROC_PASSWORD_ARGS: &[(&str, &[usize])] = &[
    ("sp_addlogin", &[2]),
    ("sp_password", &[1, 2]),
    ("sp_addlinkedsrvlogin", &[5]),
    ("sp_setapprole", &[2]),
];

fn is_value(t: &Token) -> bool {
    matches!(
        t.tok,
        Tok::Str | Tok::Number | Tok::Param | Tok::QuotedIdent
    )
}

/// Find the secrets of `sql`.
pub fn find(sql: &str, toks: &[Token], dialect: Dialect) -> Secrets {
    let mut s = Secrets::default();
    let mark = |i: usize, s: &mut Secrets| {
        if !s.tokens.contains(&i) {
            s.tokens.push(i);
        }
    };
    let mut i = 0usize;
    while let Some(t) = toks.get(i) {
        if t.tok == Tok::Word {
            let w = t.text(sql);
            if w.eq_ignore_ascii_case("IDENTIFIED") {
                i = identified(
                    sql,
                    toks,
                    i + 1,
                    &mut |j, s2: &mut Secrets| mark(j, s2),
                    &mut s,
                );
                continue;
            }
            // Before the PASSWORD rule: `sp_password` ends in `_password`.
            if let Some((_, args)) = PROC_PASSWORD_ARGS.iter().find(|(p, _)| proc_name_is(w, p)) {
                i = proc_args(sql, toks, i + 1, args, w, &mut s);
                continue;
            }
            if is_password_word(w) {
                // PASSWORD [=] x | PASSWORD ( x ) | SET PASSWORD [FOR user] = x
                let mut j = i + 1;
                if toks.get(j).is_some_and(|n| n.is_kw(sql, "FOR")) {
                    // SET PASSWORD FOR user@host = …: skip to `=` (a few tokens at most).
                    let stop = j + 8;
                    while j < stop && toks.get(j).is_some_and(|n| !n.is_punct(sql, b'=')) {
                        j += 1;
                    }
                }
                if toks.get(j).is_some_and(|n| n.is_punct(sql, b'=')) {
                    j += 1;
                }
                // = PASSWORD('x') / OLD_PASSWORD('x') (MySQL SET PASSWORD before 5.7)
                if toks
                    .get(j)
                    .is_some_and(|n| n.tok == Tok::Word && is_password_word(n.text(sql)))
                {
                    j += 1;
                }
                if toks.get(j).is_some_and(|n| n.is_punct(sql, b'(')) {
                    j += 1;
                }
                if toks.get(j).is_some_and(is_value) {
                    mark(j, &mut s);
                    i = j + 1;
                    // MySQL 8: SET PASSWORD [FOR u] = 'new' REPLACE 'current'
                    if toks.get(i).is_some_and(|n| n.is_kw(sql, "REPLACE"))
                        && toks.get(i + 1).is_some_and(is_value)
                    {
                        mark(i + 1, &mut s);
                        i += 2;
                    }
                    continue;
                }
            }
        }
        // A procedure named in brackets or quotes: `EXEC [sp_addlogin] …`,
        // `master.dbo.[sp_password] …`.
        if t.tok == Tok::QuotedIdent && dialect == Dialect::TSql {
            let w = t.text(sql).trim_matches(['[', ']', '"']);
            if let Some((p, args)) = PROC_PASSWORD_ARGS.iter().find(|(p, _)| proc_name_is(w, p)) {
                i = proc_args(sql, toks, i + 1, args, p, &mut s);
                continue;
            }
        }
        if t.tok == Tok::Param && dialect == Dialect::TSql {
            let name = t.text(sql).to_ascii_lowercase();
            if (name.contains("passw") || name.contains("pwd"))
                && toks.get(i + 1).is_some_and(|n| n.is_punct(sql, b'='))
                && toks.get(i + 2).is_some_and(is_value)
            {
                mark(i + 2, &mut s);
                i += 3;
                continue;
            }
        }
        i += 1;
    }
    s.tokens.sort_unstable();
    s.params = s
        .tokens
        .iter()
        .filter_map(|&i| param_ref(sql, toks, i, dialect))
        .collect();
    s
}

fn is_password_word(w: &str) -> bool {
    let b = w.as_bytes();
    let tail = b"password";
    b.len() >= tail.len()
        && b.get(b.len() - tail.len()..)
            .is_some_and(|t| t.eq_ignore_ascii_case(tail))
        && (b.len() == tail.len() || b.get(b.len() - tail.len() - 1) == Some(&b'_'))
}

/// A qualified name is several tokens (`master.dbo.sp_password`): `word` is its last part.
fn proc_name_is(word: &str, proc: &str) -> bool {
    word.eq_ignore_ascii_case(proc)
}

/// After `IDENTIFIED` at `i`: mark the secret(s); returns where to continue.
fn identified(
    sql: &str,
    toks: &[Token],
    mut i: usize,
    mark: &mut dyn FnMut(usize, &mut Secrets),
    s: &mut Secrets,
) -> usize {
    // WITH plugin / VIA plugin
    if toks
        .get(i)
        .is_some_and(|t| t.is_kw(sql, "WITH") || t.is_kw(sql, "VIA"))
    {
        i += 2;
    }
    let Some(t) = toks.get(i) else { return i };
    if !(t.is_kw(sql, "BY") || t.is_kw(sql, "AS") || t.is_kw(sql, "USING")) {
        return i;
    }
    i += 1;
    // BY PASSWORD 'hash' / USING PASSWORD('x')
    if toks.get(i).is_some_and(|t| t.is_kw(sql, "PASSWORD")) {
        i += 1;
        if toks.get(i).is_some_and(|t| t.is_punct(sql, b'(')) {
            i += 1;
        }
    }
    // Oracle: IDENTIFIED BY VALUES 'S:…' (the verifier, as secret as the password).
    if toks.get(i).is_some_and(|t| t.is_kw(sql, "VALUES")) && toks.get(i + 1).is_some_and(is_value)
    {
        i += 1;
    }
    match toks.get(i) {
        Some(t) if is_value(t) => mark(i, s),
        // IDENTIFIED BY tiger: Oracle's unquoted password, or another dialect's mistake, which
        // travels to the server all the same. MySQL 8's RANDOM PASSWORD is no password.
        Some(t) if t.tok == Tok::Word && !t.is_kw(sql, "RANDOM") => mark(i, s),
        _ => return i,
    }
    i += 1;
    // Oracle: ALTER USER u IDENTIFIED BY new REPLACE old
    if toks.get(i).is_some_and(|t| t.is_kw(sql, "REPLACE")) {
        if let Some(t) = toks.get(i + 1) {
            if is_value(t) || t.tok == Tok::Word {
                mark(i + 1, s);
                return i + 2;
            }
        }
    }
    i
}

/// Arguments of a system procedure call starting at `i` (optionally in parentheses): mark the
/// positional ones listed in `positions` and `sp_password`'s `@old`/`@new`.
fn proc_args(
    sql: &str,
    toks: &[Token],
    mut i: usize,
    positions: &[usize],
    proc: &str,
    s: &mut Secrets,
) -> usize {
    let sp_password = proc_name_is(proc, "sp_password");
    if toks.get(i).is_some_and(|t| t.is_punct(sql, b'(')) {
        i += 1;
    }
    let mut arg = 1usize;
    let mut arg_start = true;
    while let Some(t) = toks.get(i) {
        if t.is_punct(sql, b';') || t.is_punct(sql, b')') || (t.tok == Tok::Word && !arg_start) {
            break;
        }
        if t.is_punct(sql, b',') {
            arg += 1;
            arg_start = true;
            i += 1;
            continue;
        }
        if arg_start {
            arg_start = false;
            // Named: @name = value
            if t.tok == Tok::Param && toks.get(i + 1).is_some_and(|n| n.is_punct(sql, b'=')) {
                let name = t.text(sql).to_ascii_lowercase();
                let secret = name.contains("passw")
                    || name.contains("pwd")
                    || (sp_password && (name == "@old" || name == "@new"));
                if secret && toks.get(i + 2).is_some_and(is_value) && !s.tokens.contains(&(i + 2)) {
                    s.tokens.push(i + 2);
                }
                i += 3;
                continue;
            }
            if positions.contains(&arg) && is_value(t) && !s.tokens.contains(&i) {
                s.tokens.push(i);
            }
        }
        i += 1;
    }
    i
}

/// Which bound value a secret placeholder at token `i` stands for.
fn param_ref(sql: &str, toks: &[Token], i: usize, dialect: Dialect) -> Option<SecretParam> {
    let t = toks.get(i)?;
    if t.tok != Tok::Param {
        return None;
    }
    let text = t.text(sql);
    match dialect {
        Dialect::Postgres => {
            let n: usize = text.strip_prefix('$')?.parse().ok()?;
            Some(SecretParam::Index(n.checked_sub(1)?))
        }
        Dialect::TSql => Some(SecretParam::Name(text.to_owned())),
        Dialect::Oracle => {
            // Binds are sent in order of first appearance of each distinct name.
            let mut seen: Vec<&str> = Vec::new();
            for p in toks.iter().take(i + 1).filter(|p| p.tok == Tok::Param) {
                let name = p.text(sql);
                if !seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    seen.push(name);
                }
            }
            let pos = seen.iter().position(|s| s.eq_ignore_ascii_case(text))?;
            Some(SecretParam::Index(pos))
        }
        Dialect::MySql => {
            let pos = toks
                .iter()
                .take(i)
                .filter(|p| p.tok == Tok::Param && p.text(sql) == "?")
                .count();
            (text == "?").then_some(SecretParam::Index(pos))
        }
    }
}
