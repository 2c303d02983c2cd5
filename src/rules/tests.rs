use super::*;

#[test]
fn the_default_packs_load_and_their_examples_pass() {
    let set = RuleSet::default_packs().unwrap();
    assert!(set.rules.len() >= 11, "{}", set.rules.len());
    let (ran, failures) = run_examples(&set);
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(ran >= 40, "{ran}");
    // Every shipped rule is in the fixed category list and has examples of both kinds.
    for r in &set.rules {
        assert!(CATEGORIES.contains(&r.category));
    }
}

#[test]
fn the_rules_directory_is_the_built_in_default() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut set = RuleSet::default();
    set.add_path(&dir).unwrap();
    let (_, failures) = run_examples(&set);
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let default = RuleSet::default_packs().unwrap();
    for r in &default.rules {
        assert!(set.rules.iter().any(|x| x.id == r.id), "{}", r.id);
    }
}

fn load_err(text: &str) -> String {
    let mut set = RuleSet::default();
    set.add_text("pack.toml", text).unwrap_err().to_string()
}

const HEAD: &str =
    "[[rule]]\nid = \"R1\"\ntitle = \"t\"\nseverity = \"high\"\ncategory = \"policy\"\n";

#[test]
fn a_threshold_count_a_window_cannot_hold_is_refused() {
    let rule = |count: u64| {
        format!(
            "{HEAD}when = {{ field = \"status\", equals = \"error\" }}\nthreshold = {{ count = {count}, window_secs = 60, group_by = [\"client_ip\"] }}\n"
        )
    };
    let mut set = RuleSet::default();
    set.add_text("pack.toml", &rule(4096)).unwrap();
    assert_eq!(
        load_err(&rule(4097)),
        "pack.toml:7: rule R1: threshold count 4097 is over the 4096 hits a window keeps"
    );
}

#[test]
fn errors_name_the_file_line_and_field() {
    assert_eq!(
        load_err(&format!("{HEAD}when = {{ field = \"usr\", equals = \"x\" }}\n")),
        "pack.toml:6: rule R1: unknown field `usr` (known: protocol, session_id, user, database, client_program, client_ip, client_port, server_ip, server_port, op, sql, kind, command, objects, objects.read, objects.write, objects.execute, fingerprint, normalized, unfiltered, identifiers, status, error_code, rows, latency_us, flags)"
    );
    assert_eq!(
        load_err(&format!(
            "{HEAD}when = {{ field = \"sql\", regex = \"(unclosed\" }}\n"
        ))
        .split('\n')
        .next()
        .unwrap(),
        "pack.toml:6: rule R1: bad regex: regex parse error:"
    );
    assert_eq!(
        load_err("[[rule]]\nid = \"R1\"\ntitle = \"t\"\nseverity = \"urgent\"\ncategory = \"policy\"\nwhen = { field = \"op\", equals = \"login\" }\n"),
        "pack.toml:4: rule R1: severity \"urgent\" is not one of info, low, medium, high, critical"
    );
    assert_eq!(
        load_err("[[rule]]\nid = \"R1\"\ntitle = \"t\"\nseverity = \"low\"\ncategory = \"fun\"\nwhen = { field = \"op\", equals = \"login\" }\n"),
        "pack.toml:5: rule R1: category \"fun\" is not one of brute_force, privilege_change, destructive_ddl, no_where, mass_export, sql_injection, dangerous_routine, catalog_enumeration, credential_read, dba_tool, error_burst, sensitive_access, prescription_stats, policy"
    );
    // TOML syntax errors keep the parser's line.
    assert!(load_err("[[rule]\n").starts_with("pack.toml:1: "));
    // Both a field test and `all`.
    assert!(load_err(&format!(
        "{HEAD}when = {{ field = \"op\", equals = \"x\", all = [] }}\n"
    ))
    .contains("exactly one of"));
    // Unknown keys are errors, not silently ignored.
    assert!(load_err(&format!(
        "{HEAD}when = {{ field = \"op\", equal = \"x\" }}\n"
    ))
    .contains("equal"));
    // A duplicate id.
    let twice = format!("{HEAD}when = {{ field = \"op\", equals = \"x\" }}\n{HEAD}when = {{ field = \"op\", equals = \"x\" }}\n");
    assert_eq!(load_err(&twice), "pack.toml:8: rule R1: duplicate rule id");
}

/// A value a field never has would keep a rule silent for good: refused at load, with the values
/// the field has.
#[test]
fn impossible_values_are_errors() {
    let err = |when: &str| load_err(&format!("{HEAD}when = {when}\n"));
    assert_eq!(
        err(r#"{ field = "status", equals = "failed" }"#),
        "pack.toml:6: rule R1: `status` has no value \"failed\" (its values: ok, error, unknown)"
    );
    assert_eq!(
        err(r#"{ field = "protocol", in = ["mysql", "oracle"] }"#),
        "pack.toml:6: rule R1: `protocol` has no value \"oracle\" (its values: mysql, postgresql, tds, tns)"
    );
    assert!(
        err(r#"{ field = "kind", equals = "selekt" }"#).contains("`kind` has no value \"selekt\"")
    );
    assert!(err(r#"{ field = "flags", equals = "partal" }"#).contains("`flags` has no value"));
    assert_eq!(
        err(r#"{ field = "unfiltered", equals = "select" }"#),
        "pack.toml:6: rule R1: `unfiltered` has no value \"select\" (its values: update, delete)"
    );
    assert!(err(r#"{ field = "kind", in = [] }"#).contains("`in` lists no value"));
    assert!(err(r#"{ field = "rows", equals = "many" }"#).contains("`rows` is a number"));
    assert!(err(r#"{ field = "user", ge = 5 }"#).contains("compare numbers: `user` is not one"));
    // Case is ignored as the tests ignore it; numbers compare as numbers.
    for ok in [
        r#"{ field = "kind", equals = "SELECT" }"#,
        r#"{ field = "rows", equals = 5 }"#,
        r#"{ field = "latency_us", gt = 100 }"#,
        r#"{ field = "flags", in = ["partial", "after_gap"] }"#,
        r#"{ field = "unfiltered", equals = "DELETE" }"#,
    ] {
        let mut set = RuleSet::default();
        assert!(
            set.add_text("pack.toml", &format!("{HEAD}when = {ok}\n"))
                .is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn a_rule_without_examples_fails_the_example_run() {
    let mut set = RuleSet::default();
    set.add_text(
        "p.toml",
        &format!("{HEAD}when = {{ field = \"op\", equals = \"login\" }}\n"),
    )
    .unwrap();
    let (_, failures) = run_examples(&set);
    assert_eq!(failures.len(), 1);
    assert!(failures[0]
        .to_string()
        .starts_with("p.toml:1: rule R1: has no examples"));
}

#[test]
fn time_windows_use_the_configured_offset() {
    let text = format!(
        "{HEAD}when = {{ all = [{{ field = \"op\", equals = \"login\" }}, {{ time = [\"20:00\", \"08:00\"] }}, {{ days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"] }}] }}\n\
         [rule.examples]\n\
         match = [{{ op = \"login\", ts = \"2026-01-05T14:30:00Z\" }}]\n\
         no_match = [{{ op = \"login\", ts = \"2026-01-05T02:00:00Z\" }}, {{ op = \"login\", ts = \"2026-01-03T14:30:00Z\" }}]\n"
    );
    // 2026-01-05 is a Monday: 14:30 UTC is 22:30 at +08:00 (out of hours), 02:00 UTC is 10:00.
    // 2026-01-03 is a Saturday.
    let mut set = RuleSet {
        offset_min: parse_offset("+08:00").unwrap(),
        ..RuleSet::default()
    };
    set.add_text("p.toml", &text).unwrap();
    let (ran, failures) = run_examples(&set);
    assert_eq!((ran, failures), (3, vec![]));
    // The same examples in UTC: 14:30 is inside working hours.
    set.offset_min = 0;
    assert_eq!(run_examples(&set).1.len(), 2);
}

#[test]
fn cidr_and_offsets() {
    let n = cond::Net::parse("10.1.0.0/16").unwrap();
    assert!(n.contains("10.1.200.3".parse().unwrap()));
    assert!(!n.contains("10.2.0.1".parse().unwrap()));
    assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
    assert!(cond::Net::parse("fe80::/10")
        .unwrap()
        .contains("fe80::1".parse().unwrap()));
    assert!(cond::Net::parse("10.0.0.0/33").is_none());
    assert_eq!(parse_offset("+08:00"), Some(480));
    assert_eq!(parse_offset("-05:30"), Some(-330));
    assert_eq!(parse_offset("UTC"), Some(0));
    assert_eq!(parse_offset("Asia/Shanghai"), None);
}

/// The default pack and the index of its slow-export accumulator (rows per session per hour);
/// a hit of it on session 7 at `ms` milliseconds, `rows` returned.
fn slow_export() -> (RuleSet, impl Fn(u64, u64) -> super::correlate::Hit<'static>) {
    let set = RuleSet::default_packs().unwrap();
    let rule = set
        .rules
        .iter()
        .position(|r| r.id == "DBTAP-EXPORT-002")
        .unwrap() as u16;
    let hit = move |ms: u64, rows: u64| super::correlate::Hit {
        rule,
        ts: dbtap_core::Timestamp(ms * 1_000_000),
        session_id: 7,
        group: "0000000000000007",
        distinct: None,
        suppress: "",
        amount: rows,
    };
    (set, hit)
}

#[test]
fn an_accumulator_carries_the_excess_over() {
    let (set, hit_ms) = slow_export();
    let hit = |secs: u64, rows: u64| hit_ms(secs * 1_000, rows);
    let mut c = super::correlate::Correlator::default();
    // 3 × 400k: fires at 1.2M with 200k carried; 800k more (within the hour) fires again.
    assert!(c.offer(&set, &hit(0, 400_000)).is_none());
    assert!(c.offer(&set, &hit(60, 400_000)).is_none());
    let f = c.offer(&set, &hit(120, 400_000)).unwrap();
    let a = f.accumulate.unwrap();
    assert_eq!(
        (a.sum, a.at_least, a.records.len()),
        (1_200_000, 1_000_000, 3)
    );
    assert!(c.offer(&set, &hit(180, 700_000)).is_none());
    let a = c
        .offer(&set, &hit(240, 100_000))
        .unwrap()
        .accumulate
        .unwrap();
    assert_eq!(a.sum, 1_000_000);
    // Rows older than the window no longer count.
    assert!(c.offer(&set, &hit(10_000, 900_000)).is_none());
    assert!(c.offer(&set, &hit(20_000, 900_000)).is_none());
}

#[test]
fn an_accumulator_sums_the_whole_window_however_many_records_it_holds() {
    // A pooled application session runs a point query every 100 ms (36,000 an hour, one row
    // each) while 1,000,000 rows leave through it in pieces of 1,000: the hour's sum reaches
    // the bound only if every record of the hour counts, not just the last few thousand.
    let (set, hit) = slow_export();
    let mut c = super::correlate::Correlator::default();
    let mut fired = None;
    let mut sum = 0;
    for n in 0..36_000u64 {
        // One piece every 3.6 s: 1,000 pieces in the hour.
        let rows = if n % 36 == 35 { 1_000 } else { 1 };
        sum += rows;
        if let Some(f) = c.offer(&set, &hit(n * 100, rows)) {
            fired = Some((n, f));
            break;
        }
    }
    let (n, f) = fired.expect("the hour's 1,000,000 exported rows fire");
    let a = f.accumulate.unwrap();
    assert_eq!(a.sum, sum);
    assert!(a.sum >= 1_000_000);
    // Fired as the sum crossed the bound, within the hour.
    assert!(sum - 1_000 < 1_000_000, "{sum}");
    assert!(n < 36_000);
    // The records behind it are bounded however many there were.
    assert!(a.records.len() <= super::correlate::ACCUMULATOR_SLICES);
}

#[test]
fn distinct_values_are_counted_over_the_window_as_hits_come_and_go() {
    use super::correlate::{Correlator, Hit, MAX_HITS_PER_GROUP};
    let set = RuleSet::default_packs().unwrap();
    let i = set
        .rules
        .iter()
        .position(|r| r.id == "DBTAP-AUTH-002")
        .unwrap() as u16;
    let mut c = Correlator::default();
    fn failed_login(rule: u16, secs: u64, user: &str) -> Hit<'_> {
        Hit {
            rule,
            ts: dbtap_core::Timestamp(secs * 1_000_000_000),
            session_id: 1,
            group: "10.0.0.9",
            distinct: Some(user),
            suppress: "10.0.0.9",
            amount: 0,
        }
    }
    // Nine users fail; five minutes later they are out of the window and a tenth is alone.
    for u in 0..9 {
        assert!(c
            .offer(&set, &failed_login(i, 0, &format!("u{u}")))
            .is_none());
    }
    assert!(c.offer(&set, &failed_login(i, 400, "u9")).is_none());
    // A pool failing with one stale password fills the window past its bound: one user.
    for _ in 0..MAX_HITS_PER_GROUP + 10 {
        assert!(c.offer(&set, &failed_login(i, 401, "pool")).is_none());
    }
    // Eight more users make nine distinct ones ("pool" and u9's hit, pushed out by the bound,
    // no longer count); the ninth new one makes ten and fires.
    for u in 0..8 {
        assert!(c
            .offer(&set, &failed_login(i, 402, &format!("v{u}")))
            .is_none());
    }
    let f = c.offer(&set, &failed_login(i, 403, "v8")).unwrap();
    let t = f.threshold.unwrap();
    assert_eq!((t.group.as_str(), t.count), ("10.0.0.9", 10));
    assert_eq!(t.records.len(), MAX_HITS_PER_GROUP);
}

#[test]
fn correlation_keys_are_the_field_values_as_rules_see_them() {
    let a = crate::sql::analyze(
        "SELECT a FROM t1 JOIN s.t2 ON 1=1",
        crate::sql::Dialect::MySql,
    );
    let mut f = Facts {
        ts: dbtap_core::Timestamp(1_767_261_600_000_000_000),
        protocol: "mysql",
        session_id: 0x00ab_cdef_0123_4567,
        client_ip: "10.1.200.7".parse().unwrap(),
        client_port: 40_001,
        server_ip: "2001:db8::1".parse().unwrap(),
        server_port: 3306,
        user: Some("app"),
        database: None,
        client_program: Some("Navicat"),
        op: "query",
        status: "ok",
        rows: Some(0),
        latency_us: Some(1_234_567),
        ..Facts::of_statement("SELECT a FROM t1 JOIN s.t2 ON 1=1", &a)
    };
    f.flags.insert(crate::record::Flags::MIDSTREAM);
    f.flags.insert(crate::record::Flags::PARTIAL);
    for (name, field) in facts::FIELD_NAMES {
        let mut appended = String::new();
        f.append_values(*field, &mut appended);
        let joined: Vec<String> = f.values(*field).iter().map(str::to_owned).collect();
        assert_eq!(appended, joined.join(","), "{name}");
    }
    let mut k = String::new();
    f.append_values(Field::ClientIp, &mut k);
    f.append_values(Field::SessionId, &mut k);
    f.append_values(Field::LatencyUs, &mut k);
    assert_eq!(k, "10.1.200.700abcdef012345671234567");
}

#[test]
fn cached_statement_verdicts_agree_with_evaluating_the_record() {
    let set = RuleSet::default_packs().unwrap();
    assert!(
        set.statement_rules.len() >= 5,
        "most default rules read the statement only"
    );
    let texts = [
        "DROP TABLE patients",
        "TRUNCATE audit_log",
        "UPDATE accounts SET balance = 0",
        "DELETE FROM t WHERE id = 1",
        "SELECT * FROM users WHERE name = '' OR 1=1",
        "SELECT name, password FROM mysql.user",
        "GRANT DBA TO hackerman",
        "EXEC master..xp_cmdshell 'dir'",
        "SELECT SLEEP(5)",
        "SELECT 1",
    ];
    let mut matched = std::collections::BTreeSet::new();
    for sql in texts {
        let a = crate::sql::analyze(sql, crate::sql::Dialect::MySql);
        let bits = set.statement_bits(sql, &a);
        for op in ["query", "login"] {
            let base = Facts {
                op,
                user: Some("app"),
                rows: Some(20_000),
                rules: Some(&set),
                ..Facts::of_statement(sql, &a)
            };
            let (mut cached, mut evaluated) = (Vec::new(), Vec::new());
            set.matches(
                &Facts {
                    sql_bits: Some(&bits),
                    ..base.clone()
                },
                &mut cached,
            );
            set.matches(&base, &mut evaluated);
            assert_eq!(cached, evaluated, "{sql} ({op})");
            matched.extend(cached.iter().map(|&i| set.rules[usize::from(i)].id.clone()));
        }
    }
    for id in [
        "DBTAP-DDL-001",
        "DBTAP-DDL-002",
        "DBTAP-NOWHERE-001",
        "DBTAP-SQLI-001",
        "DBTAP-CRED-001",
        "DBTAP-PRIV-001",
        "DBTAP-ROUTINE-001",
        "DBTAP-EXPORT-001",
    ] {
        assert!(matched.contains(id), "{id} never matched: {matched:?}");
    }
}

#[test]
fn records_without_a_statement_match_the_same_with_the_cached_bits() {
    // Rules that a record without a statement meets through a `not`: one on the statement
    // alone (its verdict comes from the bits), one beside a record field (evaluated per
    // record, its statement leaf read from the bits); and the default pack's own.
    let mut set = RuleSet::default_packs().unwrap();
    set.add_text(
        "t.toml",
        r#"
[[rule]]
id = "T-NO-SQL"
title = "no statement"
severity = "low"
category = "policy"
when = { not = { field = "sql", exists = true } }

[[rule]]
id = "T-LOGIN-NO-OBJECTS"
title = "login and no objects"
severity = "low"
category = "policy"
when = { all = [{ field = "op", equals = "login" }, { not = { field = "objects", glob = ["*"] } }] }
"#,
    )
    .unwrap();
    let mut matched = std::collections::BTreeSet::new();
    for op in ["login", "ping", "query", "logout"] {
        for status in ["ok", "error", "unknown"] {
            let base = Facts {
                op,
                status,
                user: Some("app"),
                client_program: Some("Navicat Premium"),
                rows: Some(20_000),
                error_code: (status == "error").then(|| "1045".into()),
                rules: Some(&set),
                ..Facts::no_statement()
            };
            let (mut cached, mut evaluated) = (Vec::new(), Vec::new());
            set.matches(
                &Facts {
                    sql_bits: Some(set.no_statement_bits()),
                    ..base.clone()
                },
                &mut cached,
            );
            set.matches(&base, &mut evaluated);
            assert_eq!(cached, evaluated, "{op} {status}");
            matched.extend(cached.iter().map(|&i| set.rules[usize::from(i)].id.clone()));
        }
    }
    for id in ["T-NO-SQL", "T-LOGIN-NO-OBJECTS", "DBTAP-TOOL-001"] {
        assert!(matched.contains(id), "{id} never matched: {matched:?}");
    }
}

#[test]
fn line_of_counts_the_newlines_before_the_offset() {
    let f = SourceFile::new("p.toml", "a\nb\n\nc");
    let lines: Vec<usize> = [0, 1, 2, 3, 4, 5, 6, 100]
        .iter()
        .map(|&o| f.line_of(o))
        .collect();
    // Offsets 0-1 are on line 1 (the newline at 1 ends it), 2-3 on line 2, 4 on line 3,
    // 5 on line 4; past the end, the last line.
    assert_eq!(lines, [1, 1, 2, 2, 3, 4, 4, 4]);
}

#[test]
fn statement_regexes_are_checked_at_load_and_compiled_on_their_own_only_when_used() {
    let mut set = RuleSet::default();
    set.add_text(
        "t.toml",
        r#"
[[rule]]
id = "T-DROP"
title = "drop by an admin"
severity = "low"
category = "policy"
when = { all = [{ field = "sql", regex = '(?i)\bdrop\b' }, { field = "user", regex = "^adm" }] }

[[rule]]
id = "T-TRUNCATE"
title = "truncate"
severity = "low"
category = "policy"
when = { field = "normalized", glob = ["truncate *"] }

[[rule]]
id = "T-GRANT"
title = "grant"
severity = "low"
category = "policy"
when = { field = "sql", regex = '(?i)^grant\b' }
"#,
    )
    .unwrap();
    let statement_regexes = || {
        set.sql_leaves.iter().filter_map(|(_, t)| match t {
            cond::Test::Regex(rx) => Some(rx),
            _ => None,
        })
    };
    // Loaded: the two `sql` patterns went into one regex set; neither was compiled alone.
    // (`normalized` has one pattern: that one is its field's matcher, compiled.)
    let compiled: Vec<(&str, bool)> = statement_regexes()
        .map(|rx| (rx.as_str(), rx.is_compiled()))
        .collect();
    assert_eq!(
        compiled,
        [
            ("(?:(?i)\\bdrop\\b)", false),
            ("(?is)^truncate .*$", true),
            ("(?:(?i)^grant\\b)", false)
        ]
    );
    // Records with statement bits (the pipeline's) leave them so; records evaluated without
    // bits (rule examples) compile the ones they test, and the two ways agree.
    let cases = [
        ("DROP TABLE t", "admin", vec!["T-DROP"]),
        ("drop table t", "app", vec![]),
        ("GRANT ALL ON t TO x", "admin", vec!["T-GRANT"]),
        ("TRUNCATE t", "app", vec!["T-TRUNCATE"]),
    ];
    let analyses: Vec<_> = cases
        .iter()
        .map(|(sql, ..)| crate::sql::analyze(sql, crate::sql::Dialect::MySql))
        .collect();
    let facts = |i: usize| Facts {
        user: Some(cases[i].1),
        rules: Some(&set),
        ..Facts::of_statement(cases[i].0, &analyses[i])
    };
    let mut cached = Vec::new();
    for (i, (sql, user, want)) in cases.iter().enumerate() {
        let bits = set.statement_bits(sql, &analyses[i]);
        let mut hits = Vec::new();
        set.matches(
            &Facts {
                sql_bits: Some(&bits),
                ..facts(i)
            },
            &mut hits,
        );
        let ids: Vec<&str> = hits
            .iter()
            .map(|&r| set.rules[usize::from(r)].id.as_str())
            .collect();
        assert_eq!(&ids, want, "{sql} by {user}");
        cached.push(hits);
    }
    assert!(statement_regexes().all(|rx| rx.is_compiled() == rx.as_str().contains("truncate")));
    for (i, hits) in cached.iter().enumerate() {
        let mut evaluated = Vec::new();
        set.matches(&facts(i), &mut evaluated);
        assert_eq!(&evaluated, hits, "{} by {}", cases[i].0, cases[i].1);
    }
    assert!(statement_regexes().all(cond::Rx::is_compiled));
    // A bad pattern is still refused when the rules load, with the compiler's message.
    let err = load_err(&format!(
        "{HEAD}when = {{ field = \"normalized\", regex = \"a{{2,1}}\" }}\n"
    ));
    assert!(
        err.starts_with("pack.toml:6: rule R1: bad regex: regex parse error:"),
        "{err}"
    );
    assert!(err.contains("invalid repetition count range"), "{err}");
}

/// One rule on logins whose alerts are suppressed for 60 s per client address.
fn login_suppression_rules() -> RuleSet {
    let mut set = RuleSet::default();
    set.add_text(
        "p.toml",
        &format!(
            "{HEAD}when = {{ field = \"op\", equals = \"login\" }}\nsuppress_secs = 60\n\
             suppress_by = [\"client_ip\"]\n"
        ),
    )
    .unwrap();
    set
}

/// A hit of that rule at `ts` from client address `ip`.
fn login_hit(ts: dbtap_core::Timestamp, ip: &str) -> super::correlate::Hit<'_> {
    super::correlate::Hit {
        rule: 0,
        ts,
        session_id: 1,
        group: "",
        distinct: None,
        suppress: ip,
        amount: 0,
    }
}

/// Alerts held back by suppression are reported when their period ends (in capture time), or
/// at the end of the run, by a line of their own: how many, the first and last, the period's
/// end. The next alert of the group then starts a new period with nothing held.
#[test]
fn suppressed_alerts_are_reported_when_their_period_ends() {
    use super::correlate::{Closed, Correlator, Ended, Hit};
    let set = login_suppression_rules();
    let s = |secs: u64| dbtap_core::Timestamp(secs * 1_000_000_000);
    let hit = |secs: u64, ip: &'static str| login_hit(s(secs), ip);
    let mut c = Correlator::default();
    let offer = |c: &mut Correlator, h: Hit<'_>| {
        c.expire(h.ts);
        let closed: Vec<Closed> = c.take_closed().collect();
        (c.offer(&set, &h).map(|f| f.suppressed), closed)
    };
    assert_eq!(offer(&mut c, hit(0, "10.0.0.9")), (Some(0), vec![]));
    assert_eq!(offer(&mut c, hit(5, "10.0.0.7")), (Some(0), vec![]));
    for t in [10, 20, 30] {
        assert_eq!(offer(&mut c, hit(t, "10.0.0.9")), (None, vec![]));
    }
    // Before the period's end nothing is reported; at it, the three held back are.
    assert_eq!(offer(&mut c, hit(59, "10.0.0.7")), (None, vec![]));
    // Both periods (0 → 60 and 5 → 65) are over at 70: reported in the order they ended.
    let (fired, closed) = offer(&mut c, hit(70, "10.0.0.9"));
    assert_eq!(
        closed,
        vec![
            Closed {
                rule: 0,
                group: "10.0.0.9".into(),
                held: 3,
                first: s(10),
                last: s(30),
                until: s(60),
                ended: Ended::Period,
            },
            Closed {
                rule: 0,
                group: "10.0.0.7".into(),
                held: 1,
                first: s(59),
                last: s(59),
                until: s(65),
                ended: Ended::Period,
            },
        ]
    );
    assert_eq!(fired, Some(0), "a new period, nothing held in it yet");
    for t in [75, 80] {
        assert_eq!(offer(&mut c, hit(t, "10.0.0.9")), (None, vec![]));
    }
    // The run ends inside the period 70 → 130.
    c.close_all(Ended::CaptureEnd);
    let at_end: Vec<Closed> = c.take_closed().collect();
    assert_eq!(
        at_end,
        vec![Closed {
            rule: 0,
            group: "10.0.0.9".into(),
            held: 2,
            first: s(75),
            last: s(80),
            until: s(130),
            ended: Ended::CaptureEnd,
        }]
    );
    c.close_all(Ended::CaptureEnd);
    assert_eq!(
        c.take_closed().count(),
        0,
        "each held alert is reported once"
    );
    assert_eq!(c.stats.suppressed, 6);
}

/// When the suppression tables are full, the alerts they hold back are reported (`ended:
/// groups_dropped`) before the tables are emptied, and only once.
#[test]
fn held_alerts_are_reported_before_full_tables_are_emptied() {
    use super::correlate::{Closed, Correlator, Ended, Hit, MAX_GROUPS};
    let set = login_suppression_rules();
    fn hit(ts: u64, ip: &str) -> Hit<'_> {
        login_hit(dbtap_core::Timestamp(ts), ip)
    }
    let mut c = Correlator::default();
    // One group alerts, then has one alert held back; MAX_GROUPS − 1 other groups alert once.
    assert!(c.offer(&set, &hit(1, "held")).is_some());
    assert!(c.offer(&set, &hit(2, "held")).is_none());
    for i in 1..MAX_GROUPS {
        let ip = format!("g{i}");
        assert!(c.offer(&set, &hit(3, &ip)).is_some(), "{ip}");
    }
    assert_eq!(c.take_closed().count(), 0);
    assert_eq!(c.stats.groups_dropped, 0);
    // The next hit finds the tables full.
    assert!(c.offer(&set, &hit(4, "new")).is_some());
    assert_eq!(c.stats.groups_dropped, 1);
    assert_eq!(
        c.take_closed().collect::<Vec<_>>(),
        vec![Closed {
            rule: 0,
            group: "held".into(),
            held: 1,
            first: dbtap_core::Timestamp(2),
            last: dbtap_core::Timestamp(2),
            until: dbtap_core::Timestamp(1 + 60_000_000_000),
            ended: Ended::GroupsDropped,
        }]
    );
    // Its period's entry went with the tables: nothing more when it would have ended.
    c.expire(dbtap_core::Timestamp(120_000_000_000));
    c.close_all(Ended::CaptureEnd);
    assert_eq!(c.take_closed().count(), 0);
}
