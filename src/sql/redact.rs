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
//! - the same shapes inside a string literal that is itself SQL (dynamic SQL: `EXECUTE
//!   IMMEDIATE '…'`, `sp_executesql N'…'`, `EXEC('…')`, `DO $$…$$`), two literals deep: the
//!   literal is rewritten with its passwords redacted and its quoting kept.
//!
//! - a connection string inside any string literal: the value of `password=`, `pwd=` or
//!   `passwd=` (ODBC / OLE DB `…;Pwd=x;` and `{…}` values as `OPENROWSET`, `OPENDATASOURCE` and
//!   `sp_addlinkedserver @provstr` take them, libpq `… password=x` as `dblink_connect` and
//!   `postgres_fdw` take them, quoted values too).
//!
//! A secret is a literal, a quoted identifier, a bind placeholder (its bound value is then
//! secret too), or a bare word right after `IDENTIFIED BY` (Oracle's unquoted password) or
//! after `PASSWORD =` (a mistake the server rejects, but the text travels all the same;
//! `ON`, `OFF`, `NULL` and such settings excepted).

use super::lexer::{Tok, Token};
use super::{Dialect, SecretParam};

/// Token indices holding secrets, and the placeholders whose bound values are secret.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    pub tokens: Vec<usize>,
    pub params: Vec<SecretParam>,
    /// String literals that hold SQL with a password in it (dynamic SQL: `EXECUTE IMMEDIATE
    /// '…'`, `sp_executesql N'…'`, `EXEC('…')`, `DO $$…$$`): the token and the literal to write
    /// instead, the same SQL with its passwords redacted; and those passwords' values.
    pub rewrites: Vec<(usize, String)>,
    pub rewritten_values: Vec<String>,
}

/// Words that make a string literal worth reading as SQL for passwords.
const DYNAMIC_SQL_HINTS: [&str; 3] = ["identified", "password", "sp_addlogin"];

/// A string literal `text` (with its quotes) that holds SQL with passwords, rewritten with them
/// redacted, and their values; `None` when it holds none. Quoting kept: `'…'` / `N'…'` (inner
/// quotes doubled), PostgreSQL `$tag$…$tag$`, Oracle `q'[…]'`.
fn rewrite_literal(text: &str, dialect: Dialect, depth: u8) -> Option<(String, Vec<String>)> {
    // Hints are lower-case ASCII; a byte | 0x20 is its lower case for letters. Most literals
    // (values) hold none, and this runs for every literal of every statement analysed.
    let has = |hint: &str| contains_ascii_ci(text, hint);
    let dynamic_sql = DYNAMIC_SQL_HINTS.iter().any(|h| has(h));
    if !dynamic_sql && !CONNECTION_KEYS.iter().any(|k| has(k)) {
        return None;
    }
    let starts = |p: &str| {
        text.get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    };
    let q_quote = starts("q'") || starts("nq'");
    // (prefix with the opening quote, inner text as SQL, closing quote, inner quotes doubled)
    let (open, inner, close, doubled): (&str, String, &str, bool) = if text.starts_with('$') {
        let tag_end = text.get(1..)?.find('$')? + 2;
        let tag = text.get(..tag_end)?;
        let inner = text.get(tag_end..text.len().checked_sub(tag.len())?)?;
        (tag, inner.to_owned(), tag, false)
    } else if q_quote {
        let q = text.find('\'')?;
        let open = text.get(..q + 2)?;
        let inner = text.get(q + 2..text.len().checked_sub(2)?)?;
        let close = text.get(text.len().checked_sub(2)?..)?;
        (open, inner.to_owned(), close, false)
    } else {
        // `'…'`, `N'…'`, or MySQL's `"…"`: the quote doubled inside.
        let q = text.find(['\'', '"'])?;
        let open = text.get(..=q)?;
        let close = text.get(q..=q)?;
        let inner = text.get(q + 1..text.len().checked_sub(1)?)?;
        (open, inner.replace(&close.repeat(2), close), close, true)
    };
    // Connection-string values first: the SQL reading below would cut `Pwd=P@ss!1;` into
    // several tokens and redact only the first.
    let (inner, mut values) = match scrub_connection_string(&inner) {
        Some((scrubbed, values)) => (scrubbed, values),
        None => (inner, Vec::new()),
    };
    let out = if dynamic_sql {
        let toks = super::lexer::tokenize(&inner, dialect, super::MAX_REDACT_TOKENS);
        let found = find_in(&inner, &toks.list, dialect, depth);
        apply(&inner, &toks.list, &found).map(|(out, found_values)| {
            values.extend(found_values);
            out
        })
    } else {
        None
    };
    let out = match out {
        Some(out) => out,
        None if !values.is_empty() => inner,
        None => return None,
    };
    let body = if doubled {
        out.replace(close, &close.repeat(2))
    } else {
        out
    };
    Some(([open, &body, close].concat(), values))
}

/// Keys of a connection string whose value is a password (lower-case).
const CONNECTION_KEYS: [&str; 3] = ["password", "pwd", "passwd"];

/// Whether `text` contains `needle` (lower-case ASCII), ASCII case ignored.
fn contains_ascii_ci(text: &str, needle: &str) -> bool {
    let h = needle.as_bytes();
    text.as_bytes()
        .windows(h.len())
        .any(|w| w.first().map(|b| b | 0x20) == h.first().copied() && w.eq_ignore_ascii_case(h))
}

/// `text` (a literal's content) with the value of every `password=` / `pwd=` / `passwd=`
/// key replaced by `***`, and those values; `None` when it has none. A key starts the text or
/// follows a separator (`;`, space, quote, bracket, comma), so `old_password =` is not one (the
/// SQL rules see that). The value is `{…}` (ODBC), `'…'` or `"…"` (libpq; the quotes kept
/// around the `***`), or runs to the next `;` or white space.
fn scrub_connection_string(text: &str) -> Option<(String, Vec<String>)> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let at_key_start = i == 0
            || b.get(i - 1)
                .is_some_and(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'@'));
        let key = CONNECTION_KEYS.iter().find(|k| {
            at_key_start
                && b.get(i..i + k.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(k.as_bytes()))
                && !b
                    .get(i + k.len())
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        });
        let Some(key) = key else {
            i += 1;
            continue;
        };
        let mut j = i + key.len();
        while b.get(j).is_some_and(|c| *c == b' ' || *c == b'\t') {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            i += 1;
            continue;
        }
        j += 1;
        while b.get(j).is_some_and(|c| *c == b' ' || *c == b'\t') {
            j += 1;
        }
        // [start, end) is the value without its quotes.
        let (start, end, after) = match b.get(j) {
            Some(&q @ (b'{' | b'\'' | b'"')) => {
                let close = if q == b'{' { b'}' } else { q };
                let end = b
                    .get(j + 1..)
                    .and_then(|rest| rest.iter().position(|c| *c == close))
                    .map_or(b.len(), |p| j + 1 + p);
                (j + 1, end, (end + 1).min(b.len()))
            }
            _ => {
                let end = b
                    .get(j..)
                    .and_then(|rest| {
                        rest.iter()
                            .position(|c| *c == b';' || c.is_ascii_whitespace())
                    })
                    .map_or(b.len(), |p| j + p);
                (j, end, end)
            }
        };
        if end > start {
            // `start` and `end` sit next to ASCII bytes (separators, quotes, braces) or at
            // the ends, so they are character boundaries.
            out.push_str(text.get(copied..start).unwrap_or_default());
            out.push_str("***");
            values.push(text.get(start..end).unwrap_or_default().to_owned());
            copied = end;
        }
        i = after.max(i + 1);
    }
    if values.is_empty() {
        return None;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Some((out, values))
}

/// `text` with the secrets `found` in it replaced: a secret literal by `'***'` (in its quoting),
/// a literal holding dynamic SQL by its rewrite; and the secret values (their text without
/// quotes, each once). `None` when there is nothing to replace (placeholders are not replaced:
/// their bound values are).
pub(super) fn apply(text: &str, toks: &[Token], found: &Secrets) -> Option<(String, Vec<String>)> {
    let mut replaced: Vec<(usize, Option<&str>)> = found
        .tokens
        .iter()
        .copied()
        .filter(|&i| toks.get(i).is_some_and(|t| t.tok != Tok::Param))
        .map(|i| (i, None))
        .collect();
    replaced.extend(found.rewrites.iter().map(|(i, t)| (*i, Some(t.as_str()))));
    if replaced.is_empty() {
        return None;
    }
    replaced.sort_unstable_by_key(|(i, _)| *i);
    let mut values: Vec<String> = Vec::new();
    let mut keep = |value: &str| {
        if !value.is_empty() && !values.iter().any(|v| v == value) {
            values.push(value.to_owned());
        }
    };
    found.rewritten_values.iter().for_each(|v| keep(v));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0usize;
    for (i, rewrite) in replaced {
        let Some(t) = toks.get(i) else { continue };
        out.push_str(text.get(pos..t.start).unwrap_or_default());
        match rewrite {
            // A literal holding dynamic SQL: the same SQL, its passwords redacted.
            Some(r) => out.push_str(r),
            None => {
                keep(super::secret_value(t.text(text)));
                out.push_str(match t.tok {
                    Tok::Str => "'***'",
                    Tok::QuotedIdent => "\"***\"",
                    _ => "***",
                });
            }
        }
        pos = t.end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    Some((out, values))
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

/// Literals inside literals looked into: `DO $$ … EXECUTE '… PASSWORD ''x''' … $$` is two.
const MAX_DYNAMIC_SQL_DEPTH: u8 = 2;

/// Find the secrets of `sql`.
pub fn find(sql: &str, toks: &[Token], dialect: Dialect) -> Secrets {
    find_in(sql, toks, dialect, MAX_DYNAMIC_SQL_DEPTH)
}

/// [`find`]; string literals holding dynamic SQL are looked into too, `depth` levels deep.
fn find_in(sql: &str, toks: &[Token], dialect: Dialect, depth: u8) -> Secrets {
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
                let equals = toks.get(j).is_some_and(|n| n.is_punct(sql, b'='));
                if equals {
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
                let bare_after_equals = equals
                    && toks
                        .get(j)
                        .is_some_and(|n| n.tok == Tok::Word && !is_setting_word(n.text(sql)));
                if toks.get(j).is_some_and(is_value) || bare_after_equals {
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
    if depth > 0 {
        for (i, t) in toks.iter().enumerate() {
            if t.tok == Tok::Str && !s.tokens.contains(&i) {
                if let Some((text, values)) = rewrite_literal(t.text(sql), dialect, depth - 1) {
                    s.rewrites.push((i, text));
                    s.rewritten_values.extend(values);
                }
            }
        }
    }
    s.tokens.sort_unstable();
    s.params = s
        .tokens
        .iter()
        .filter_map(|&i| param_ref(sql, toks, i, dialect))
        .collect();
    s
}

/// Words that follow `…PASSWORD =` as a setting, not a password (`SET GLOBAL
/// log_builtin_as_identified_by_password = ON`, `PASSWORD = NULL`).
fn is_setting_word(w: &str) -> bool {
    [
        "ON",
        "OFF",
        "TRUE",
        "FALSE",
        "NULL",
        "DEFAULT",
        "NONE",
        "UNLIMITED",
    ]
    .iter()
    .any(|k| w.eq_ignore_ascii_case(k))
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
