//! Statement kind, command and referenced objects, from the token stream.
//!
//! This is a shallow reading, not a parser: the statement's leading keywords give its kind and
//! command; a scan over all tokens finds table references after `FROM`, `JOIN`, `INTO`
//! (`INSERT`/`REPLACE`/`MERGE`), `UPDATE`, `DELETE`, `TRUNCATE`, DDL object words, and routine
//! names after `CALL`/`EXEC`. Subqueries and CTE bodies are scanned like the rest; CTE names are
//! not objects. Anything not understood yields no object rather than a wrong one.

use super::lexer::{Tok, Token};
use super::{Access, Dialect, Kind, Object, MAX_NAME_LEN, MAX_OBJECTS};

/// Kind, command and objects of one statement text.
#[derive(Debug, Default)]
pub struct Shape {
    pub kind: Kind,
    pub command: String,
    pub objects: Vec<Object>,
    /// More objects than [`MAX_OBJECTS`] were referenced; the rest were dropped.
    pub objects_truncated: bool,
    /// The statements after the first, when the text holds several (see `statements`).
    pub later: Vec<super::statements::Statement>,
    /// More statements than `statements::MAX_STATEMENTS`; the rest were not listed.
    pub later_truncated: bool,
    /// The UPDATE and DELETE statements without a WHERE clause of their own.
    pub unfiltered: super::statements::Unfiltered,
}

/// Object-type words that may follow CREATE / ALTER / DROP, for the command name.
const OBJECT_TYPES: &[&str] = &[
    "TABLE",
    "VIEW",
    "INDEX",
    "DATABASE",
    "SCHEMA",
    "USER",
    "ROLE",
    "LOGIN",
    "GROUP",
    "PROCEDURE",
    "PROC",
    "FUNCTION",
    "TRIGGER",
    "SEQUENCE",
    "SYNONYM",
    "TABLESPACE",
    "PACKAGE",
    "TYPE",
    "EVENT",
    "EXTENSION",
    "SYSTEM",
    "SESSION",
    "SERVER",
    "DIRECTORY",
    "LIBRARY",
    "PROFILE",
    "POLICY",
    "RULE",
    "DOMAIN",
    "CERTIFICATE",
    "CREDENTIAL",
    "ASSEMBLY",
    "INSTANCE",
];

/// Object types whose name is a table-like object (table, view, sequence) or routine.
const TABLE_TYPES: &[&str] = &["TABLE", "VIEW", "SEQUENCE", "SYNONYM"];
const ROUTINE_TYPES: &[&str] = &["PROCEDURE", "PROC", "FUNCTION", "PACKAGE", "TRIGGER"];

/// A word's ASCII upper-case form when it is short enough to be a keyword (≤ 16 bytes).
pub(super) fn upper16(s: &str) -> Option<([u8; 16], usize)> {
    let b = s.as_bytes();
    if b.len() > 16 {
        return None;
    }
    let mut a = [0u8; 16];
    for (d, c) in a.iter_mut().zip(b) {
        *d = c.to_ascii_uppercase();
    }
    Some((a, b.len()))
}

/// Words that end a table reference (never an alias or a name), upper-case.
fn is_stop_word(u: &[u8]) -> bool {
    matches!(
        u,
        b"FROM"
            | b"WHERE"
            | b"ON"
            | b"USING"
            | b"JOIN"
            | b"INNER"
            | b"LEFT"
            | b"RIGHT"
            | b"FULL"
            | b"CROSS"
            | b"NATURAL"
            | b"OUTER"
            | b"STRAIGHT_JOIN"
            | b"GROUP"
            | b"ORDER"
            | b"HAVING"
            | b"LIMIT"
            | b"OFFSET"
            | b"UNION"
            | b"EXCEPT"
            | b"INTERSECT"
            | b"MINUS"
            | b"SET"
            | b"VALUES"
            | b"VALUE"
            | b"SELECT"
            | b"FOR"
            | b"WINDOW"
            | b"FETCH"
            | b"PARTITION"
            | b"TABLESAMPLE"
            | b"WITH"
            | b"LATERAL"
            | b"RETURNING"
            | b"INTO"
            | b"FORCE"
            | b"USE"
            | b"IGNORE"
            | b"AS"
            | b"START"
            | b"CONNECT"
            | b"PIVOT"
            | b"UNPIVOT"
            | b"OUTPUT"
            | b"OPTION"
            | b"DEFAULT"
            | b"WHEN"
            | b"THEN"
            | b"ELSE"
            | b"END"
            | b"AND"
            | b"OR"
            | b"NOT"
            | b"LOCK"
            | b"IN"
            | b"SHARE"
            | b"NOWAIT"
            | b"SKIP"
            | b"ADD"
            | b"DROP"
            | b"ALTER"
            | b"MODIFY"
            | b"CHANGE"
            | b"RENAME"
            | b"TO"
            | b"CASCADE"
            | b"RESTRICT"
            | b"PURGE"
            | b"IF"
            | b"ONLY"
            | b"PRIMARY"
            | b"CONSTRAINT"
            | b"COLUMN"
            | b"LIKE"
            | b"ENGINE"
            | b"DUPLICATE"
            | b"CONFLICT"
            | b"DO"
            | b"MATCHED"
    )
}

fn is_stop(sql: &str, t: &Token) -> bool {
    t.tok == Tok::Word
        && upper16(t.text(sql)).is_some_and(|(a, n)| a.get(..n).is_some_and(is_stop_word))
}

fn kw_in(sql: &str, t: Option<&Token>, list: &'static [&'static str]) -> Option<&'static str> {
    let t = t?;
    if t.tok != Tok::Word {
        return None;
    }
    let s = t.text(sql);
    list.iter().find(|w| s.eq_ignore_ascii_case(w)).copied()
}

/// Classify the statement(s) in `toks`; `cut`: the tokens stop before the end of the text.
pub fn classify(sql: &str, toks: &[Token], dialect: Dialect, cut: bool) -> Shape {
    let mut shape = Shape::default();
    let mut ctes: Vec<&str> = Vec::new();
    let start = statement_start(sql, toks, &mut ctes);
    let (kind, command) = kind_of(sql, toks.get(start..).unwrap_or_default(), dialect);
    shape.kind = kind;
    shape.command = command;
    objects(sql, toks, dialect, &ctes, &mut shape);
    let scan = super::statements::scan(sql, toks, dialect, start, cut);
    shape.later = scan.later;
    shape.later_truncated = scan.truncated;
    shape.unfiltered = scan.unfiltered;
    shape
}

/// Whether `word` (upper-case) names an object type after CREATE / ALTER / DROP.
pub(super) fn is_object_type(word: &str) -> bool {
    OBJECT_TYPES.contains(&word)
}

/// Index of the first token of the main statement: leading `(` and `;` skipped, a `WITH`
/// clause's CTEs skipped (their names collected).
pub(super) fn statement_start<'a>(sql: &'a str, toks: &[Token], ctes: &mut Vec<&'a str>) -> usize {
    let mut i = 0;
    while toks
        .get(i)
        .is_some_and(|t| t.is_punct(sql, b'(') || t.is_punct(sql, b';'))
    {
        i += 1;
    }
    if !toks.get(i).is_some_and(|t| t.is_kw(sql, "WITH")) {
        return i;
    }
    i += 1;
    if toks.get(i).is_some_and(|t| t.is_kw(sql, "RECURSIVE")) {
        i += 1;
    }
    loop {
        // name [ ( columns ) ] AS [ NOT ] [ MATERIALIZED ] ( body )
        match toks.get(i) {
            Some(t) if matches!(t.tok, Tok::Word | Tok::QuotedIdent) => {
                ctes.push(unquote(t.text(sql)));
                i += 1;
            }
            _ => return i,
        }
        if toks.get(i).is_some_and(|t| t.is_punct(sql, b'(')) {
            i = skip_parens(sql, toks, i);
        }
        if toks.get(i).is_some_and(|t| t.is_kw(sql, "AS")) {
            i += 1;
        }
        while toks
            .get(i)
            .is_some_and(|t| t.is_kw(sql, "NOT") || t.is_kw(sql, "MATERIALIZED"))
        {
            i += 1;
        }
        if toks.get(i).is_some_and(|t| t.is_punct(sql, b'(')) {
            i = skip_parens(sql, toks, i);
        }
        if toks.get(i).is_some_and(|t| t.is_punct(sql, b',')) {
            i += 1;
            continue;
        }
        return i;
    }
}

/// Index after the parenthesized group opening at `i`.
fn skip_parens(sql: &str, toks: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(t) = toks.get(i) {
        if t.is_punct(sql, b'(') {
            depth += 1;
        } else if t.is_punct(sql, b')') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

fn word_upper(sql: &str, t: Option<&Token>) -> Option<String> {
    let t = t?;
    (t.tok == Tok::Word).then(|| t.text(sql).to_ascii_uppercase())
}

/// Kind and command from the statement's leading tokens.
pub(super) fn kind_of(sql: &str, toks: &[Token], dialect: Dialect) -> (Kind, String) {
    let Some(first) = word_upper(sql, toks.first()) else {
        return (Kind::Other, String::new());
    };
    // The second word only decides between kinds: compared on the stack, not allocated.
    let second_buf = toks
        .get(1)
        .filter(|t| t.tok == Tok::Word)
        .and_then(|t| upper16(t.text(sql)));
    let second = second_buf
        .as_ref()
        .and_then(|(a, n)| std::str::from_utf8(a.get(..*n)?).ok());
    let (kind, command) = kind_and_command(&first, second, toks, sql, dialect);
    (kind, command.unwrap_or(first))
}

/// [`kind_of`] once the leading words are known; the command is `None` when it is the first
/// word itself.
fn kind_and_command(
    first: &str,
    second: Option<&str>,
    toks: &[Token],
    sql: &str,
    dialect: Dialect,
) -> (Kind, Option<String>) {
    let cmd1 = || None;
    match first {
        "SELECT" | "VALUES" => (Kind::Select, cmd1()),
        "TABLE" if dialect == Dialect::Postgres => (Kind::Select, cmd1()),
        "INSERT" | "REPLACE" => (Kind::Insert, cmd1()),
        // T-SQL's `UPDATE STATISTICS t`: refreshes the optimizer's statistics, no rows change.
        "UPDATE" if dialect == Dialect::TSql && second == Some("STATISTICS") => {
            (Kind::Other, Some("UPDATE STATISTICS".into()))
        }
        "UPDATE" => (Kind::Update, cmd1()),
        "DELETE" => (Kind::Delete, cmd1()),
        "MERGE" | "UPSERT" => (Kind::Merge, cmd1()),
        "CREATE" | "ALTER" | "DROP" => {
            // The object type: the first known type word among the next few (skipping OR
            // REPLACE, TEMPORARY, UNIQUE, DEFINER = …, MATERIALIZED, PUBLIC, …).
            let ty = toks
                .iter()
                .skip(1)
                .take(8)
                .find_map(|t| kw_in(sql, Some(t), OBJECT_TYPES));
            let command = ty.map(|ty| format!("{first} {ty}"));
            let dcl = matches!(ty, Some("USER" | "ROLE" | "LOGIN" | "GROUP"));
            (if dcl { Kind::Dcl } else { Kind::Ddl }, command)
        }
        "TRUNCATE" | "RENAME" | "COMMENT" => {
            if first == "RENAME" && second == Some("USER") {
                return (Kind::Dcl, Some("RENAME USER".into()));
            }
            (Kind::Ddl, cmd1())
        }
        "GRANT" | "REVOKE" | "DENY" => (Kind::Dcl, cmd1()),
        "SET" => match second {
            Some("ROLE") => (Kind::Dcl, Some("SET ROLE".into())),
            Some("PASSWORD") => (Kind::Dcl, Some("SET PASSWORD".into())),
            Some("TRANSACTION") => (Kind::Tcl, Some("SET TRANSACTION".into())),
            _ => (Kind::Set, cmd1()),
        },
        "RESET" => (Kind::Set, cmd1()),
        "BEGIN" => {
            let tx = match toks.get(1) {
                None => true,
                Some(t) if t.is_punct(sql, b';') => true,
                Some(_) => matches!(
                    second,
                    Some(
                        "TRAN"
                            | "TRANSACTION"
                            | "WORK"
                            | "ISOLATION"
                            | "READ"
                            | "DEFERRABLE"
                            | "NOT"
                            | "DISTRIBUTED"
                    )
                ),
            };
            if tx {
                (Kind::Tcl, cmd1())
            } else {
                // A procedural block (PL/SQL, T-SQL BEGIN … END).
                (Kind::Other, Some("BLOCK".into()))
            }
        }
        "DECLARE" => (Kind::Other, Some("BLOCK".into())),
        "START" if second == Some("TRANSACTION") => (Kind::Tcl, Some("START TRANSACTION".into())),
        "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "ABORT" | "XA" => (Kind::Tcl, cmd1()),
        // PostgreSQL's END is COMMIT; elsewhere END closes a block.
        "END" if dialect == Dialect::Postgres => (Kind::Tcl, cmd1()),
        "PREPARE" if second == Some("TRANSACTION") => {
            (Kind::Tcl, Some("PREPARE TRANSACTION".into()))
        }
        "CALL" | "EXEC" | "EXECUTE" => (Kind::Call, cmd1()),
        "USE" => (Kind::Use, cmd1()),
        "SHOW" => (Kind::Show, cmd1()),
        "DESC" | "DESCRIBE" => (Kind::Describe, Some("DESCRIBE".into())),
        "EXPLAIN" => (Kind::Explain, cmd1()),
        _ => (Kind::Other, cmd1()),
    }
}

/// Strip one level of identifier quoting.
pub(super) fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(b'"'), Some(b'"')) | (Some(b'`'), Some(b'`')) | (Some(b'['), Some(b']'))
            if s.len() >= 2 =>
        {
            s.get(1..s.len() - 1).unwrap_or(s)
        }
        _ => s,
    }
}

/// A (possibly qualified) name starting at `i`: its text (quotes removed) and the index after it.
fn qualified_name(sql: &str, toks: &[Token], mut i: usize) -> Option<(String, usize)> {
    let first = toks.get(i)?;
    if !matches!(first.tok, Tok::Word | Tok::QuotedIdent) || is_stop(sql, first) {
        return None;
    }
    let mut name = String::from(unquote(first.text(sql)));
    i += 1;
    // `.part` repeated; T-SQL `db..table` keeps the empty schema.
    while let Some(dot) = toks.get(i) {
        if !dot.is_punct(sql, b'.') || dot.space_before {
            break;
        }
        match toks.get(i + 1) {
            Some(t) if matches!(t.tok, Tok::Word | Tok::QuotedIdent) && !t.space_before => {
                name.push('.');
                name.push_str(unquote(t.text(sql)));
                i += 2;
            }
            Some(t) if t.is_punct(sql, b'.') => {
                name.push('.');
                i += 1;
            }
            _ => break,
        }
    }
    if name.len() > MAX_NAME_LEN {
        return None;
    }
    Some((name, i))
}

/// Skip an optional alias (`[AS] name`) after a table reference.
fn skip_alias(sql: &str, toks: &[Token], mut i: usize) -> usize {
    if toks.get(i).is_some_and(|t| t.is_kw(sql, "AS")) {
        i += 1;
        if toks
            .get(i)
            .is_some_and(|t| matches!(t.tok, Tok::Word | Tok::QuotedIdent))
        {
            return i + 1;
        }
        return i;
    }
    match toks.get(i) {
        Some(t) if matches!(t.tok, Tok::Word | Tok::QuotedIdent) && !is_stop(sql, t) => i + 1,
        _ => i,
    }
}

struct Collector<'a> {
    sql: &'a str,
    ctes: &'a [&'a str],
    shape: &'a mut Shape,
}

impl Collector<'_> {
    fn add(&mut self, name: String, access: Access) {
        if access != Access::Execute && self.ctes.iter().any(|c| c.eq_ignore_ascii_case(&name)) {
            return;
        }
        if self
            .shape
            .objects
            .iter()
            .any(|o| o.access == access && o.name == name)
        {
            return;
        }
        if self.shape.objects.len() >= MAX_OBJECTS {
            self.shape.objects_truncated = true;
            return;
        }
        self.shape.objects.push(Object { name, access });
    }

    /// One table reference at `i` (a name not followed by `(`, i.e. not a table function), then
    /// its alias; with `list`, further references after commas. Returns the index after.
    fn refs(&mut self, toks: &[Token], mut i: usize, access: Access, list: bool) -> usize {
        let sql = self.sql;
        loop {
            // PostgreSQL `ONLY t`; MySQL/T-SQL modifiers are skipped by the callers.
            if toks.get(i).is_some_and(|t| t.is_kw(sql, "ONLY")) {
                i += 1;
            }
            let Some((name, next)) = qualified_name(sql, toks, i) else {
                return i;
            };
            if toks.get(next).is_some_and(|t| t.is_punct(sql, b'(')) && access != Access::Write {
                // A table function (generate_series(…), dbo.fn(…)): not an object.
                return next;
            }
            self.add(name, access);
            i = skip_alias(sql, toks, next);
            if list && toks.get(i).is_some_and(|t| t.is_punct(sql, b',')) {
                i += 1;
                continue;
            }
            return i;
        }
    }
}

/// Collect the objects referenced anywhere in the text.
fn objects(sql: &str, toks: &[Token], dialect: Dialect, ctes: &[&str], shape: &mut Shape) {
    let mut c = Collector { sql, ctes, shape };
    // For each open parenthesis: is it a function call's argument list (FROM inside
    // EXTRACT(… FROM …) or TRIM(… FROM …) is not a table reference)?
    let mut call_parens: Vec<bool> = Vec::new();
    let in_call = |stack: &[bool]| stack.last().copied().unwrap_or(false);
    // Index of the main keyword of the current statement: after a `;`, leading parentheses and
    // a WITH clause.
    let head_of = |from: usize| {
        let mut scratch = Vec::new();
        from + statement_start(sql, toks.get(from..).unwrap_or_default(), &mut scratch)
    };
    let mut stmt_start = head_of(0);
    let mut i = 0usize;
    while let Some(t) = toks.get(i) {
        match t.tok {
            Tok::Punct if t.is_punct(sql, b'(') => {
                let prev_word = i
                    .checked_sub(1)
                    .and_then(|p| toks.get(p))
                    .is_some_and(|p| p.tok == Tok::Word && !is_stop(sql, p));
                let inner_query = toks.get(i + 1).is_some_and(|n| {
                    n.is_kw(sql, "SELECT") || n.is_kw(sql, "WITH") || n.is_kw(sql, "VALUES")
                });
                call_parens.push(prev_word && !inner_query);
                i += 1;
                continue;
            }
            Tok::Punct if t.is_punct(sql, b')') => {
                call_parens.pop();
                i += 1;
                continue;
            }
            Tok::Punct if t.is_punct(sql, b';') => {
                stmt_start = head_of(i + 1);
                i += 1;
                continue;
            }
            Tok::Word => {}
            _ => {
                i += 1;
                continue;
            }
        }
        let Some((upper, n)) = upper16(t.text(sql)) else {
            i += 1;
            continue;
        };
        let word = upper.get(..n).unwrap_or_default();
        let is = |kw: &str| word == kw.as_bytes();
        let at_start = i == stmt_start;
        if is("FROM") && !in_call(&call_parens) {
            // DELETE [modifiers] FROM t: the target is written.
            let deleting = toks
                .get(stmt_start..i)
                .is_some_and(|s| s.first().is_some_and(|f| f.is_kw(sql, "DELETE")))
                && toks.get(stmt_start + 1..i).is_some_and(|s| {
                    s.iter().all(|m| {
                        ["LOW_PRIORITY", "QUICK", "IGNORE", "TOP"]
                            .iter()
                            .any(|k| m.is_kw(sql, k))
                            || m.tok == Tok::Number
                            || m.is_punct(sql, b'(')
                            || m.is_punct(sql, b')')
                    })
                });
            let access = if deleting {
                Access::Write
            } else {
                Access::Read
            };
            i = c.refs(toks, i + 1, access, !deleting);
            continue;
        }
        if is("JOIN")
            || is("STRAIGHT_JOIN")
            || (is("USING") && merge_statement(sql, toks, stmt_start))
        {
            i = c.refs(toks, i + 1, Access::Read, false);
            continue;
        }
        if at_start && (is("INSERT") || is("REPLACE") || is("MERGE") || is("UPSERT")) {
            let mut j = i + 1;
            while toks.get(j).is_some_and(|m| {
                [
                    "IGNORE",
                    "LOW_PRIORITY",
                    "DELAYED",
                    "HIGH_PRIORITY",
                    "ALL",
                    "OVERWRITE",
                    "TOP",
                    // T-SQL bulk load: INSERT BULK table (…)
                    "BULK",
                ]
                .iter()
                .any(|k| m.is_kw(sql, k))
            }) {
                j += 1;
            }
            if toks.get(j).is_some_and(|m| m.is_kw(sql, "INTO")) {
                j += 1;
            }
            i = c.refs(toks, j, Access::Write, false);
            continue;
        }
        if at_start && is("UPDATE") {
            let mut j = i + 1;
            while toks.get(j).is_some_and(|m| {
                ["LOW_PRIORITY", "IGNORE", "ONLY", "TOP"]
                    .iter()
                    .any(|k| m.is_kw(sql, k))
            }) {
                j += 1;
            }
            i = c.refs(toks, j, Access::Write, true);
            continue;
        }
        if at_start && is("DELETE") {
            // DELETE t FROM … (MySQL multi-table, T-SQL): targets before FROM are written.
            let mut j = i + 1;
            while toks.get(j).is_some_and(|m| {
                ["LOW_PRIORITY", "QUICK", "IGNORE"]
                    .iter()
                    .any(|k| m.is_kw(sql, k))
            }) {
                j += 1;
            }
            if !toks.get(j).is_some_and(|m| m.is_kw(sql, "FROM")) {
                i = c.refs(toks, j, Access::Write, true);
            } else {
                i = j;
            }
            continue;
        }
        if at_start && is("COPY") {
            // PostgreSQL COPY t [(cols)] FROM … loads t; COPY t TO … reads it; COPY (query) TO …
            // reads what the query reads (scanned like any subquery).
            if let Some((name, mut j)) = qualified_name(sql, toks, i + 1) {
                if toks.get(j).is_some_and(|m| m.is_punct(sql, b'(')) {
                    j = skip_parens(sql, toks, j);
                }
                let access = if toks.get(j).is_some_and(|m| m.is_kw(sql, "FROM")) {
                    Access::Write
                } else {
                    Access::Read
                };
                c.add(name, access);
                // Past FROM/TO and the file, STDIN, STDOUT or PROGRAM that follows.
                i = j + 2;
                continue;
            }
            i += 1;
            continue;
        }
        if at_start && is("TRUNCATE") {
            let mut j = i + 1;
            if toks.get(j).is_some_and(|m| m.is_kw(sql, "TABLE")) {
                j += 1;
            }
            i = c.refs(toks, j, Access::Write, true);
            continue;
        }
        if at_start && is("RENAME") && toks.get(i + 1).is_some_and(|m| m.is_kw(sql, "TABLE")) {
            // RENAME TABLE a TO b, c TO d
            let mut j = i + 2;
            while let Some((name, next)) = qualified_name(sql, toks, j) {
                c.add(name, Access::Write);
                j = next;
                if toks
                    .get(j)
                    .is_some_and(|m| m.is_kw(sql, "TO") || m.is_punct(sql, b','))
                {
                    j += 1;
                } else {
                    break;
                }
            }
            i = j;
            continue;
        }
        if at_start && (is("CREATE") || is("ALTER") || is("DROP")) {
            i = ddl_object(&mut c, toks, i);
            continue;
        }
        if at_start
            && (is("CALL") || ((is("EXEC") || is("EXECUTE")) && dialect != Dialect::Postgres))
        {
            let mut j = i + 1;
            // T-SQL: EXEC @ret = proc …
            if toks.get(j).is_some_and(|m| m.tok == Tok::Param)
                && toks.get(j + 1).is_some_and(|m| m.is_punct(sql, b'='))
            {
                j += 2;
            }
            if let Some((name, next)) = qualified_name(sql, toks, j) {
                if !name.eq_ignore_ascii_case("IMMEDIATE") {
                    c.add(name, Access::Execute);
                }
                j = next;
            }
            i = j;
            continue;
        }
        if dialect == Dialect::Oracle && is("BEGIN") {
            // An anonymous block `BEGIN pkg.proc(…); END;` — the common shape of OCI calls:
            // each statement that is a bare name followed by `(` or `;` is a routine call.
            let mut j = i + 1;
            while let Some((name, next)) = qualified_name(sql, toks, j) {
                let called = toks
                    .get(next)
                    .is_some_and(|m| m.is_punct(sql, b'(') || m.is_punct(sql, b';'));
                if !called {
                    break;
                }
                c.add(name, Access::Execute);
                j = skip_statement(sql, toks, next);
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
}

/// True when the statement starting at `start` is a MERGE (its USING names the source).
fn merge_statement(sql: &str, toks: &[Token], start: usize) -> bool {
    toks.get(start).is_some_and(|t| t.is_kw(sql, "MERGE"))
}

/// Index after the `;` that ends the statement at `i` (parentheses balanced).
fn skip_statement(sql: &str, toks: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(t) = toks.get(i) {
        if t.is_punct(sql, b'(') {
            depth += 1;
        } else if t.is_punct(sql, b')') {
            depth = depth.saturating_sub(1);
        } else if t.is_punct(sql, b';') && depth == 0 {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// CREATE / ALTER / DROP at `i`: the table, view, sequence or routine it names (written).
fn ddl_object(c: &mut Collector<'_>, toks: &[Token], i: usize) -> usize {
    let sql = c.sql;
    // Find the object type word within the next few tokens.
    let mut j = i + 1;
    let mut ty: Option<&'static str> = None;
    while j < i + 9 {
        let Some(t) = toks.get(j) else { break };
        if let Some(found) = kw_in(sql, Some(t), OBJECT_TYPES) {
            ty = Some(found);
            j += 1;
            break;
        }
        j += 1;
    }
    let Some(ty) = ty else { return i + 1 };
    // PACKAGE BODY
    if ty == "PACKAGE" && toks.get(j).is_some_and(|t| t.is_kw(sql, "BODY")) {
        j += 1;
    }
    // IF [NOT] EXISTS
    if toks.get(j).is_some_and(|t| t.is_kw(sql, "IF")) {
        j += 1;
        if toks.get(j).is_some_and(|t| t.is_kw(sql, "NOT")) {
            j += 1;
        }
        if toks.get(j).is_some_and(|t| t.is_kw(sql, "EXISTS")) {
            j += 1;
        }
    }
    if TABLE_TYPES.contains(&ty) {
        // DROP TABLE a, b
        return c.refs(toks, j, Access::Write, true);
    }
    if ROUTINE_TYPES.contains(&ty) {
        if let Some((name, next)) = qualified_name(sql, toks, j) {
            c.add(name, Access::Write);
            return next;
        }
        return j;
    }
    if ty == "INDEX" {
        // CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table
        while let Some(t) = toks.get(j) {
            if t.is_kw(sql, "ON") {
                return c.refs(toks, j + 1, Access::Write, false);
            }
            if t.is_punct(sql, b'(') || t.is_punct(sql, b';') {
                break;
            }
            j += 1;
        }
    }
    j
}
