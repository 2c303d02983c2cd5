//! SQL analysis of statement records: kind, command, referenced objects, normalized text and
//! fingerprint, password redaction and literal masking, for the MySQL, PostgreSQL, T-SQL and
//! Oracle dialects.
//!
//! It works on tokens, not on a grammar, so it never fails: odd, cut or non-SQL text still gives
//! a kind (`other` at worst), a normalized text and a fingerprint. Every output is bounded:
//! [`MAX_TOKENS`] tokens are read for classification (the whole text is still masked and
//! redacted), [`MAX_OBJECTS`] objects are kept, the normalized text is cut at
//! [`MAX_NORMALIZED_LEN`] bytes.

mod classify;
mod lexer;
mod normalize;
mod redact;
mod stage;
mod statements;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use normalize::fingerprint;
pub use stage::{
    Mask, SqlOptions, SqlStage, SqlStats, SqlView, MAX_CACHED_SQL_LEN, MAX_CACHED_STATEMENTS,
};
pub use statements::{Statement, Unfiltered, MAX_STATEMENTS};

/// Tokens read for classification and normalization.
pub const MAX_TOKENS: usize = 64 * 1024;
/// Objects kept per statement.
pub const MAX_OBJECTS: usize = 64;
/// Longest object name kept (longer names are not objects).
pub const MAX_NAME_LEN: usize = 512;
/// Longest normalized text.
pub const MAX_NORMALIZED_LEN: usize = 16 * 1024;
/// Tokens read for redaction and masking: enough for any statement a parser keeps
/// (`Limits::max_sql_len`), so that no secret or literal past a bound leaks.
/// Tokens of buffer space kept between analyses (32 bytes each).
const KEPT_TOKEN_BUFFER: usize = 16 * 1024;

const MAX_REDACT_TOKENS: usize = 4 * 1024 * 1024;

/// SQL dialect, chosen by the protocol that carried the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    MySql,
    Postgres,
    TSql,
    Oracle,
}

impl Dialect {
    /// The dialect of a protocol name (`mysql`, `postgresql`, `tds`, `tns`).
    pub fn of_protocol(protocol: &str) -> Dialect {
        match protocol {
            "postgresql" => Dialect::Postgres,
            "tds" => Dialect::TSql,
            "tns" => Dialect::Oracle,
            _ => Dialect::MySql,
        }
    }
}

/// What a statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    Select,
    Insert,
    Update,
    Delete,
    /// MERGE / UPSERT.
    Merge,
    /// CREATE, ALTER, DROP, TRUNCATE, RENAME, COMMENT (objects other than users and roles).
    Ddl,
    /// GRANT, REVOKE, DENY, CREATE/ALTER/DROP USER, ROLE, LOGIN, GROUP, SET ROLE, SET PASSWORD.
    Dcl,
    /// BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, SET TRANSACTION, XA.
    Tcl,
    /// CALL, EXEC, EXECUTE.
    Call,
    Set,
    Use,
    Show,
    Describe,
    Explain,
    #[default]
    Other,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 15] = [
        Kind::Select,
        Kind::Insert,
        Kind::Update,
        Kind::Delete,
        Kind::Merge,
        Kind::Ddl,
        Kind::Dcl,
        Kind::Tcl,
        Kind::Call,
        Kind::Set,
        Kind::Use,
        Kind::Show,
        Kind::Describe,
        Kind::Explain,
        Kind::Other,
    ];

    /// The record's `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Merge => "merge",
            Kind::Ddl => "ddl",
            Kind::Dcl => "dcl",
            Kind::Tcl => "tcl",
            Kind::Call => "call",
            Kind::Set => "set",
            Kind::Use => "use",
            Kind::Show => "show",
            Kind::Describe => "describe",
            Kind::Explain => "explain",
            Kind::Other => "other",
        }
    }
}

/// How a statement uses an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// A procedure or function called.
    Execute,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

/// A table, view or routine a statement references, schema-qualified where written (identifier
/// quotes removed, case as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub name: String,
    pub access: Access,
}

/// A bind placeholder whose bound value is a password: by position (0-based, `?`, `$n`, Oracle
/// binds) or by name (T-SQL `@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretParam {
    Index(usize),
    Name(String),
}

/// The analysis of one statement text.
#[derive(Debug, Default)]
pub struct Analysis {
    /// The dialect it was read in.
    pub dialect: Dialect,
    pub kind: Kind,
    /// Leading keywords, upper-case: `SELECT`, `DROP TABLE`, `CREATE USER`, `GRANT`, `BLOCK`…
    pub command: String,
    pub objects: Vec<Object>,
    /// The statements after the first, when the text holds several (a batch, a block, a stacked
    /// query): rules test their kinds and commands too. Empty for a single statement.
    pub statements: Vec<Statement>,
    /// The UPDATE and DELETE statements of the text that have no WHERE clause of their own
    /// (see [`Unfiltered`]): rules see their kinds as `unfiltered`.
    pub unfiltered: Unfiltered,
    /// Objects were dropped at [`MAX_OBJECTS`], statements at [`MAX_STATEMENTS`],
    /// or the text had more than [`MAX_TOKENS`] tokens.
    pub truncated: bool,
    /// Normalized text (literals → `?`, lists collapsed, comments gone, case and spacing folded).
    pub normalized: String,
    /// [`fingerprint`] of `normalized`.
    pub fingerprint: u64,
    /// The text with every password replaced by `***`, when it had any.
    pub redacted: Option<String>,
    /// Placeholders whose bound values are passwords.
    pub secret_params: Vec<SecretParam>,
    /// The passwords written in the text, as the server would quote them back (a syntax error
    /// repeats the text near the mistake: `… near 'IDENTIFIED BY 'S3cr3t''`): scrubbed from the
    /// record's error message too.
    pub secret_values: Vec<String>,
}

/// Analyse `sql` in `dialect`.
pub fn analyze(sql: &str, dialect: Dialect) -> Analysis {
    thread_local! {
        /// The token buffer, reused from statement to statement (it only grows to the largest
        /// statement seen, at most [`MAX_TOKENS`] tokens).
        static TOKENS: std::cell::RefCell<Vec<lexer::Token>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    TOKENS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut list) => {
            let mut toks = lexer::Tokens {
                list: std::mem::take(&mut *list),
                truncated: false,
            };
            toks.truncated = lexer::tokenize_into(sql, dialect, MAX_TOKENS, &mut toks.list);
            let a = analyze_tokens(sql, dialect, &toks);
            *list = toks.list;
            // Keep the buffer at the size of ordinary statements, not of the largest ever seen.
            list.shrink_to(KEPT_TOKEN_BUFFER);
            a
        }
        // Re-entered (cannot happen today): a buffer of its own.
        Err(_) => analyze_tokens(sql, dialect, &lexer::tokenize(sql, dialect, MAX_TOKENS)),
    })
}

fn analyze_tokens(sql: &str, dialect: Dialect, toks: &lexer::Tokens) -> Analysis {
    let shape = classify::classify(sql, &toks.list, dialect, toks.truncated);
    let (redacted, secret_params, secret_tokens, secret_values) = redact_text(sql, dialect, toks);
    // Secrets are values: `?` in the normalized text like any literal (Oracle's unquoted
    // passwords would otherwise stay there as words).
    let normalized = normalize::normalize(sql, &toks.list, &secret_tokens);
    let fingerprint = normalize::fingerprint(&normalized);
    Analysis {
        dialect,
        kind: shape.kind,
        command: shape.command,
        objects: shape.objects,
        statements: shape.later,
        unfiltered: shape.unfiltered,
        truncated: shape.objects_truncated || shape.later_truncated || toks.truncated,
        normalized,
        fingerprint,
        redacted,
        secret_params,
        secret_values,
    }
}

/// The redacted text, the secret placeholders, the secret tokens and the secret values.
type Redaction = (Option<String>, Vec<SecretParam>, Vec<usize>, Vec<String>);

/// The redacted text (when there was a secret to replace), the secret placeholders, the
/// indices of the secret tokens, and the secret values (their text without quotes).
fn redact_text(sql: &str, dialect: Dialect, toks: &lexer::Tokens) -> Redaction {
    // Redaction must see the whole text: re-tokenize with the larger bound when the first pass
    // stopped early.
    let full;
    let list = if toks.truncated {
        full = lexer::tokenize(sql, dialect, MAX_REDACT_TOKENS);
        &full.list
    } else {
        &toks.list
    };
    let secrets = redact::find(sql, list, dialect);
    match redact::apply(sql, list, &secrets) {
        Some((out, values)) => (Some(out), secrets.params, secrets.tokens, values),
        None => (None, secrets.params, secrets.tokens, Vec::new()),
    }
}

/// A secret token's value as the server would quote it back: a literal without its quotes (and
/// its `N`/`E`/`B`/`X` prefix), a quoted identifier without its quotes, a bare word as it is.
pub(crate) fn secret_value(text: &str) -> &str {
    const QUOTES: [char; 5] = ['\'', '"', '`', '[', ']'];
    let mut chars = text.chars();
    let body = match (chars.next(), chars.next()) {
        (Some(q), _) if QUOTES.contains(&q) => text,
        (Some('N' | 'n' | 'E' | 'e' | 'B' | 'b' | 'X' | 'x'), Some('\'')) => {
            text.get(1..).unwrap_or(text)
        }
        _ => return text,
    };
    body.trim_matches(QUOTES)
}

/// Distinct identifiers listed by [`identifiers`], at most.
pub const MAX_IDENTIFIERS: usize = 1024;

/// The words of `sql` that may name something (columns, tables, schemas, functions: bare words,
/// keywords among them, and quoted identifiers without their quotes), distinct, in order, at
/// most [`MAX_IDENTIFIERS`] of the first [`MAX_TOKENS`] tokens. For rules on column names
/// (`identifiers` matched against a pack list of patient-identity columns): literals,
/// comments and placeholders are not words, and a qualified name gives each part.
pub fn identifiers(sql: &str, dialect: Dialect) -> Vec<&str> {
    let toks = lexer::tokenize(sql, dialect, MAX_TOKENS);
    let mut out: Vec<&str> = Vec::new();
    // A set, not a scan of `out`: a long text of a thousand names repeated would cost a
    // thousand comparisons per word.
    let mut seen: foldhash::HashSet<&str> = foldhash::HashSet::default();
    for t in &toks.list {
        let word = match t.tok {
            lexer::Tok::Word => t.text(sql),
            lexer::Tok::QuotedIdent => classify::unquote(t.text(sql)),
            _ => continue,
        };
        if word.is_empty() || seen.contains(word) {
            continue;
        }
        if out.len() == MAX_IDENTIFIERS {
            break;
        }
        seen.insert(word);
        out.push(word);
    }
    out
}

/// `sql` as any output may show it: every password written in it replaced by `***` and, with
/// `mask`, every literal by `?`. For text a parser kept beside the statement (the statements of
/// a multi-statement query that were not run), which the statement's own analysis did not see.
pub fn shown_text(sql: &str, dialect: Dialect, mask: bool) -> Cow<'_, str> {
    let toks = lexer::tokenize(sql, dialect, MAX_REDACT_TOKENS);
    let redacted = match redact_text(sql, dialect, &toks).0 {
        Some(r) => Cow::Owned(r),
        None => Cow::Borrowed(sql),
    };
    if !mask {
        return redacted;
    }
    Cow::Owned(mask_literals(&redacted, dialect).into_owned())
}

/// `message` with every one of `secrets` replaced by `***`.
pub fn scrub<'a>(message: &'a str, secrets: &[String]) -> Cow<'a, str> {
    if !secrets.iter().any(|s| message.contains(s.as_str())) {
        return Cow::Borrowed(message);
    }
    let mut out = message.to_owned();
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    Cow::Owned(out)
}

/// `sql` with every literal value replaced by `?` (`--mask literals`). Text past the token bound
/// is dropped rather than shown unmasked.
pub fn mask_literals(sql: &str, dialect: Dialect) -> Cow<'_, str> {
    let toks = lexer::tokenize(sql, dialect, MAX_REDACT_TOKENS);
    if !toks.list.iter().any(lexer::Token::is_literal) && !toks.truncated {
        return Cow::Borrowed(sql);
    }
    let end = if toks.truncated {
        toks.list.last().map_or(0, |t| t.end)
    } else {
        sql.len()
    };
    let mut masked = normalize::mask_literals(sql.get(..end).unwrap_or_default(), &toks.list);
    if toks.truncated {
        masked.push_str(" …");
    }
    Cow::Owned(masked)
}
