//! The statements after the first in a text that holds several: a T-SQL batch
//! (`SET NOCOUNT ON; DROP TABLE t`, or the same without the semicolon), a procedural block
//! (`BEGIN DELETE FROM t; … END;`), an injected stacked query (`…'; DROP TABLE t; --`).
//!
//! The record's `kind` and `command` are those of the first statement; without this list a rule
//! on `command = "DROP TABLE"` would not see a table dropped behind a `SET`. Like the rest of the
//! analysis it is a shallow reading, not a parser. A statement starts:
//! - after a `;` outside parentheses (every dialect);
//! - after a block opener: `BEGIN` of a block (not of a transaction), `THEN`, `ELSE`, `LOOP`;
//! - in T-SQL, whose statements need no separator, at a statement keyword (`SELECT`, `DROP`,
//!   `EXEC`, …) outside parentheses that cannot continue the statement before it: not the
//!   `SELECT` or `EXEC` an `INSERT` takes its rows from, the `SET` of an `UPDATE`, the `DROP`
//!   or `ALTER` inside an `ALTER TABLE`, a keyword after `UNION`, `FOR`, `ON`, … ("T-SQL
//!   statement terminators are optional": every statement keyword may begin one).
//!
//! Nothing is split inside `GRANT` / `REVOKE` / `DENY` (their permission lists are statement
//! keywords) or `MERGE` (its `WHEN … THEN UPDATE` arms), up to their `;`. The body of a routine
//! definition (`CREATE PROCEDURE … AS …`, a trigger, a package) is not run when the definition
//! is, so the scan stops there; PostgreSQL bodies are string literals and never seen as tokens.
//! Statements of kind `other` (`DECLARE`, `IF`, `PRINT`, an assignment) are not listed.

use super::classify::{kind_of, statement_start, upper16};
use super::lexer::{Tok, Token};
use super::{Dialect, Kind};

/// Statements listed after the first, at most. A longer batch is cut here and its analysis is
/// marked truncated.
pub const MAX_STATEMENTS: usize = 64;

/// One statement of a text that holds several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: Kind,
    pub command: String,
}

/// T-SQL keywords that may begin a statement.
const TSQL_STARTERS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "DROP",
    "CREATE",
    "ALTER",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "DENY",
    "EXEC",
    "EXECUTE",
    "SET",
    "USE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVE",
    "DECLARE",
    "IF",
    "WHILE",
    "PRINT",
    "RETURN",
    "BULK",
    "DBCC",
    "BACKUP",
    "RESTORE",
    "KILL",
    "SHUTDOWN",
    "RECONFIGURE",
    "OPEN",
    "CLOSE",
    "FETCH",
    "DEALLOCATE",
    "RAISERROR",
    "THROW",
    "WAITFOR",
];

/// Words after which a statement keyword continues the statement: `UNION SELECT`,
/// `FOR UPDATE`, `DECLARE … CURSOR FOR SELECT`, `ON DUPLICATE KEY UPDATE`, `INSERT OR
/// REPLACE`, `OFFSET … ROWS FETCH`, `CREATE TABLE … AS SELECT`. Not `ON`: `SET NOCOUNT ON`
/// is followed by the next statement (a foreign key's `ON DELETE CASCADE` is told apart by
/// what follows it, see [`Verb::takes`]).
const CONTINUING_AFTER: &[&str] = &[
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "MINUS",
    "ALL",
    "DISTINCT",
    "AS",
    "FOR",
    "KEY",
    "OR",
    "ROW",
    "ROWS",
];

/// Words after `ON DELETE` / `ON UPDATE` that make it a foreign key's action.
const KEY_ACTIONS: &[&str] = &["CASCADE", "SET", "NO", "RESTRICT"];

/// Words after which the next statement starts (in procedural code; elsewhere what follows
/// them is an expression, which is not a statement keyword and is not listed).
const OPENERS: &[&str] = &["THEN", "ELSE", "LOOP"];

/// Object types whose definition carries a body of statements that the definition does not run.
const BODY_TYPES: &[&str] = &[
    "PROCEDURE",
    "PROC",
    "FUNCTION",
    "TRIGGER",
    "PACKAGE",
    "TYPE",
    "EVENT",
];

/// What the statement being scanned is, as far as its continuations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// GRANT, REVOKE, DENY, MERGE: nothing splits them but `;`.
    Unsplit,
    /// INSERT: its first SELECT / EXEC / VALUES is its source.
    Insert {
        source_seen: bool,
    },
    /// UPDATE: its first SET is its own.
    Update {
        set_seen: bool,
    },
    /// ALTER (TABLE, DATABASE, INDEX, LOGIN, …): ALTER / DROP / SET / ADD / WITH are its clauses.
    Alter,
    Other,
}

impl Verb {
    fn of(first: &str) -> Verb {
        match first {
            "GRANT" | "REVOKE" | "DENY" | "MERGE" => Verb::Unsplit,
            "INSERT" | "REPLACE" => Verb::Insert { source_seen: false },
            "UPDATE" => Verb::Update { set_seen: false },
            "ALTER" => Verb::Alter,
            _ => Verb::Other,
        }
    }

    /// Whether `word` (upper-case, after `prev` and before `next`) continues the statement;
    /// notes what it consumed.
    fn takes(&mut self, word: &str, prev: Option<&str>, next: Option<&str>) -> bool {
        if prev.is_some_and(|p| CONTINUING_AFTER.contains(&p)) {
            return true;
        }
        let key_action = prev == Some("ON")
            && matches!(word, "DELETE" | "UPDATE")
            && next.is_some_and(|n| KEY_ACTIONS.contains(&n));
        if key_action {
            return true;
        }
        match self {
            Verb::Unsplit => true,
            Verb::Insert { source_seen } if !*source_seen => {
                let source = matches!(word, "SELECT" | "EXEC" | "EXECUTE" | "VALUES" | "DEFAULT");
                *source_seen |= source;
                source
            }
            Verb::Update { set_seen } if !*set_seen && word == "SET" => {
                *set_seen = true;
                true
            }
            Verb::Alter => matches!(word, "ALTER" | "DROP" | "SET" | "ADD" | "WITH"),
            // `DROP TABLE IF EXISTS t`.
            _ => word == "IF" && prev.is_some_and(super::classify::is_object_type),
        }
    }
}

/// The statement that begins at `at`.
struct Begun {
    kind: Kind,
    command: String,
    /// Index of its verb (past a `WITH` clause).
    verb_at: usize,
    verb: Verb,
    /// A routine definition: the rest of the text is its body.
    body: bool,
    /// A `BEGIN` block: what follows starts a statement.
    opens_block: bool,
}

fn begin_at(sql: &str, toks: &[Token], at: usize, dialect: Dialect) -> Begun {
    let rest = toks.get(at..).unwrap_or_default();
    let mut ctes = Vec::new();
    let verb_at = at + statement_start(sql, rest, &mut ctes);
    let (kind, command) = kind_of(sql, toks.get(verb_at..).unwrap_or_default(), dialect);
    let first = upper(sql, toks.get(verb_at));
    let first = first.as_ref().map_or("", |(a, n)| as_str(a, *n));
    let defined = command
        .split_once(' ')
        .filter(|(verb, _)| matches!(*verb, "CREATE" | "ALTER"))
        .map(|(_, ty)| ty);
    // PostgreSQL routine bodies are string literals; T-SQL requires CREATE VIEW to be alone
    // in its batch, and everything after AS is the view.
    let body = dialect != Dialect::Postgres
        && defined.is_some_and(|ty| {
            BODY_TYPES.contains(&ty) || (dialect == Dialect::TSql && ty == "VIEW")
        });
    Begun {
        kind,
        opens_block: first == "BEGIN" && command == "BLOCK",
        command,
        verb_at,
        verb: Verb::of(first),
        body,
    }
}

fn upper(sql: &str, t: Option<&Token>) -> Option<([u8; 16], usize)> {
    let t = t?;
    if t.tok != Tok::Word {
        return None;
    }
    upper16(t.text(sql))
}

fn as_str(a: &[u8; 16], n: usize) -> &str {
    a.get(..n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The UPDATE and DELETE statements of a text that have no WHERE clause of their own: they
/// change every row of their table. A WHERE inside parentheses (a subquery, a CTE before the
/// verb) filters something else: `UPDATE t SET a = (SELECT max(b) FROM u WHERE …)` changes
/// every row of `t`. `WHERE CURRENT OF cursor` is a WHERE clause (one row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unfiltered {
    pub update: bool,
    pub delete: bool,
}

impl Unfiltered {
    /// The kinds, `update` before `delete`.
    pub fn kinds(self) -> impl Iterator<Item = Kind> {
        [(self.update, Kind::Update), (self.delete, Kind::Delete)]
            .into_iter()
            .filter_map(|(on, kind)| on.then_some(kind))
    }
}

/// What [`scan`] found in a text.
#[derive(Debug, Default)]
pub struct Scan {
    /// The statements after the first.
    pub later: Vec<Statement>,
    /// The list was cut at [`MAX_STATEMENTS`].
    pub truncated: bool,
    pub unfiltered: Unfiltered,
}

/// The statement being scanned, for its WHERE clause.
struct Current {
    kind: Kind,
    has_where: bool,
}

impl Current {
    fn new(kind: Kind) -> Current {
        Current {
            kind,
            has_where: false,
        }
    }

    /// The statement ended (at a `;`, the next statement or the end of the text).
    fn end(&mut self, unfiltered: &mut Unfiltered) {
        if !self.has_where {
            match self.kind {
                Kind::Update => unfiltered.update = true,
                Kind::Delete => unfiltered.delete = true,
                _ => {}
            }
        }
        self.kind = Kind::Other;
    }
}

/// The statements after the one starting at `start` (as [`statement_start`] found it), and the
/// UPDATE and DELETE statements without a WHERE clause. `cut`: the tokens stop before the end of
/// the text (at `MAX_TOKENS`), so the last statement's WHERE may lie past them and it is not
/// counted as unfiltered.
pub fn scan(sql: &str, toks: &[Token], dialect: Dialect, start: usize, cut: bool) -> Scan {
    let mut found = Scan::default();
    let first = begin_at(sql, toks, start, dialect);
    if first.body {
        return found;
    }
    let mut current = Current::new(first.kind);
    let mut verb = first.verb;
    let mut next_starts = first.opens_block;
    let mut depth = 0usize;
    let mut prev: Option<([u8; 16], usize)> = None;
    let mut i = first.verb_at + 1;
    while let Some(t) = toks.get(i) {
        if t.is_punct(sql, b'(') {
            depth += 1;
        } else if t.is_punct(sql, b')') {
            depth = depth.saturating_sub(1);
        }
        if depth > 0 || t.tok != Tok::Word {
            if depth == 0 && t.is_punct(sql, b';') {
                next_starts = true;
                verb = Verb::Other;
                current.end(&mut found.unfiltered);
            }
            if depth == 0 && !t.is_punct(sql, b';') {
                // No statement starts with a literal or an operator (`THEN 1 ELSE 2 END` is
                // an expression).
                prev = None;
                next_starts = false;
            }
            i += 1;
            continue;
        }
        let word_buf = upper16(t.text(sql));
        let word = word_buf.as_ref().map_or("", |(a, n)| as_str(a, *n));
        if next_starts && OPENERS.contains(&word) {
            // `…; ELSE DELETE …`: the opener opens, the statement comes after it.
            prev = word_buf;
            i += 1;
            continue;
        }
        let prev_word = prev.as_ref().map(|(a, n)| as_str(a, *n));
        let next_buf = upper(sql, toks.get(i + 1));
        let next_word = next_buf.as_ref().map(|(a, n)| as_str(a, *n));
        let starts = next_starts
            || (!verb.takes(word, prev_word, next_word)
                && dialect == Dialect::TSql
                && TSQL_STARTERS.contains(&word));
        if starts {
            let begun = begin_at(sql, toks, i, dialect);
            // Only a statement that is one ends the one before: after `THEN` in an UPDATE's
            // `CASE WHEN … THEN col …` the word is an expression (kind `other`), and the
            // UPDATE's WHERE may still follow.
            if begun.kind != Kind::Other {
                current.end(&mut found.unfiltered);
                current = Current::new(begun.kind);
                if found.later.len() == MAX_STATEMENTS {
                    found.truncated = true;
                    return found;
                }
                found.later.push(Statement {
                    kind: begun.kind,
                    command: begun.command,
                });
            }
            if begun.body {
                return found;
            }
            verb = begun.verb;
            next_starts = begun.opens_block;
            prev = upper(sql, toks.get(begun.verb_at));
            i = begun.verb_at + 1;
            continue;
        }
        if word == "WHERE" {
            current.has_where = true;
        }
        if verb != Verb::Unsplit && OPENERS.contains(&word) {
            next_starts = true;
        }
        prev = word_buf;
        i += 1;
    }
    if !cut {
        current.end(&mut found.unfiltered);
    }
    found
}
