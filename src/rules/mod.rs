//! Risk rules: packs of TOML files (`rules/`), compiled once at start, matched against every
//! record on the worker that owns its flow; threshold rules are counted by the correlator in the
//! writer, which sees the records of all workers in one deterministic order.
//!
//! The file format and the fields rules can test are documented in `rules/README.md`.

pub mod alerts;
pub mod baseline;
mod cond;
pub mod correlate;
mod examples;
pub mod facts;
mod handle;
mod spec;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use alerts::{AlertOutput, AlertReport};
pub use cond::{glob_regex, Cond};
pub use examples::{run_examples, ExampleFailure};
pub use facts::{Facts, Field};
pub use handle::Rules;

/// Most rules a rule set may hold.
pub const MAX_RULES: usize = 4096;
/// Largest rule file read.
pub const MAX_RULE_FILE_LEN: usize = 4 << 20;

/// The default packs, built into the binary so that `dbtap replay` applies them from anywhere.
pub const DEFAULT_PACKS: &[(&str, &str)] = &[(
    "rules/default/default.toml",
    include_str!("../../rules/default/default.toml"),
)];

/// How serious a rule's alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const NAMES: [&'static str; 5] = ["info", "low", "medium", "high", "critical"];

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Severity::NAMES[self as usize]
    }
}

/// The fixed list of categories reports and integrations rely on.
pub const CATEGORIES: &[&str] = &[
    "brute_force",
    "privilege_change",
    "destructive_ddl",
    "no_where",
    "mass_export",
    "sql_injection",
    "dangerous_routine",
    "catalog_enumeration",
    "credential_read",
    "dba_tool",
    "error_burst",
    "sensitive_access",
    "prescription_stats",
    "policy",
];

/// A threshold: alert when `count` matching records (or distinct values of `distinct`) fall in
/// `window_secs` within one group.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub count: u64,
    pub window_secs: u64,
    pub group_by: Vec<Field>,
    pub distinct: Option<Field>,
}

/// An accumulator: alert when the sum of `field` over matching records reaches `at_least`
/// within `window_secs` in one group; the excess carries over.
#[derive(Debug, Clone)]
pub struct Accumulate {
    pub field: Field,
    pub at_least: u64,
    pub window_secs: u64,
    pub group_by: Vec<Field>,
}

/// A baseline: learn (key → values) for `learn_secs`, then alert on each new value of a key.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub learn_secs: u64,
    pub key: Vec<Field>,
    pub value: Field,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub category: &'static str,
    pub description: String,
    pub tags: Vec<String>,
    pub when: Cond,
    pub threshold: Option<Threshold>,
    pub accumulate: Option<Accumulate>,
    pub baseline: Option<Baseline>,
    pub suppress_secs: u64,
    pub suppress_by: Vec<Field>,
    /// Where the rule was read from (`file:line`).
    pub origin: String,
    examples: Option<examples::Examples>,
}

impl Rule {
    /// A baseline rule whose hit is settled by the session, its context and the statement's
    /// fingerprint: its key fields are the session's or its context's, its value is the
    /// fingerprint. Once the correlator has been offered such a hit, the same hit again
    /// changes nothing but its count of hits (the pair is known: learnt from the first, or
    /// fired on once and then known), so the record stage may count repeats instead of
    /// passing them on. (When the baseline is full, a pair not learnt fires once per record
    /// stage rather than on every repeat.)
    pub fn settled_by_fingerprint(&self) -> bool {
        self.threshold.is_none()
            && self.accumulate.is_none()
            && self.baseline.as_ref().is_some_and(|b| {
                b.value == Field::Fingerprint && b.key.iter().all(|f| f.is_session_constant())
            })
    }
}

/// A rule file's text, for line numbers in errors.
pub struct SourceFile {
    pub path: String,
    pub text: String,
    /// Byte offsets of the text's newlines, in order (every example of a pack asks for its
    /// line: counting from the start each time made loading quadratic in the pack's size).
    newlines: Vec<usize>,
}

impl SourceFile {
    /// A file's path and text.
    pub fn new(path: &str, text: &str) -> Self {
        SourceFile {
            path: path.to_owned(),
            text: text.to_owned(),
            newlines: text
                .bytes()
                .enumerate()
                .filter(|&(_, c)| c == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    pub fn error(&self, offset: usize, rule: Option<&str>, msg: impl Into<String>) -> RuleError {
        RuleError {
            file: self.path.clone(),
            line: self.line_of(offset),
            rule: rule.map(str::to_owned),
            message: msg.into(),
        }
    }
}

/// A rule file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {}{message}", rule.as_ref().map(|r| format!("rule {r}: ")).unwrap_or_default())]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub rule: Option<String>,
    pub message: String,
}

/// Bit `i` of a bit set kept as 64-bit words (statement bits: leaves, then rule verdicts).
pub(crate) fn bit_is_set(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

/// Compiled rules and the time zone their clock conditions use.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Tests on statement-derived fields of all rules (see [`Cond::SqlLeaf`]).
    pub sql_leaves: Vec<(Field, cond::Test)>,
    /// The regex leaves of `sql_leaves` grouped by field, one [`regex::RegexSet`] each: a
    /// statement's text is scanned once per field rather than once per rule (rebuilt whenever a
    /// pack is added).
    sql_regex_sets: Vec<FieldRegexSet>,
    /// Rules whose condition reads only statement fields: their verdict is one more bit of the
    /// statement bits (after the leaves'), computed once per distinct text. (rule, bit).
    statement_rules: Vec<(usize, usize)>,
    /// The other rules, in order: evaluated on each record.
    record_rules: Vec<usize>,
    /// [`RuleSet::no_statement_bits`] (rebuilt with the leaves).
    no_statement_bits: Vec<u64>,
    /// `kind` leaves of `sql_leaves` as bit masks over [`crate::sql::Kind::ALL`]: (leaf, mask).
    sql_kind_masks: Vec<(usize, u32)>,
    /// The other leaves of `sql_leaves` (neither regex nor `kind` equality), tested one by one.
    sql_other_leaves: Vec<usize>,
    /// Per rule, what its condition requires of `op` and `status` (rebuilt with the leaves).
    prefilters: Vec<Prefilter>,
    /// Local time − UTC, minutes (`--tz`).
    pub offset_min: i32,
}

/// Values a rule requires of a record's `op` and `status`, read off the tests that are direct
/// parts of its top-level `all` (or its single test): a record whose `op` or `status` is none
/// of them cannot meet the rule, so its condition is not evaluated. Most rules that are not
/// about the statement alone are about logins or errors, and most records are neither.
#[derive(Debug, Default, Clone)]
struct Prefilter {
    op: Option<Vec<String>>,
    status: Option<Vec<String>>,
}

impl Prefilter {
    fn of(when: &Cond) -> Self {
        let mut p = Prefilter::default();
        let conjuncts = match when {
            Cond::All(cs) => cs.as_slice(),
            one => std::slice::from_ref(one),
        };
        for c in conjuncts {
            match c {
                Cond::Test(Field::Op, cond::Test::OneOf(items)) => p.op = Some(items.clone()),
                Cond::Test(Field::Status, cond::Test::OneOf(items)) => {
                    p.status = Some(items.clone())
                }
                _ => {}
            }
        }
        p
    }

    /// The record's `op` and `status` pass the rule's own `equals` / `in` tests on them.
    fn admits(&self, f: &Facts<'_>) -> bool {
        let pass = |want: &Option<Vec<String>>, v: &str| {
            want.as_deref().is_none_or(|w| cond::one_of(w, v))
        };
        pass(&self.op, f.op) && pass(&self.status, f.status)
    }
}

/// The regex tests of one statement field, matched together.
#[derive(Debug)]
struct FieldRegexSet {
    field: Field,
    matcher: FieldMatcher,
    /// Leaf index of each pattern of the matcher, in order.
    leaves: Vec<usize>,
}

#[derive(Debug)]
enum FieldMatcher {
    /// A field with one regex keeps it as is (a lone regex searches faster than a set of one:
    /// it can skip ahead to its literals).
    One(regex::Regex),
    Set(regex::RegexSet),
}

/// Compiled size limit of one regex set, and of a statement test's own regex (see
/// [`cond::Rx`]; a pattern compiles within the limit its set compiled within).
const REGEX_SET_SIZE_LIMIT: usize = 16 << 20;

/// Rule indices that a record matched.
pub type Matches = Vec<u16>;

impl RuleSet {
    /// The built-in default packs.
    pub fn default_packs() -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        for (path, text) in DEFAULT_PACKS {
            set.add_text(path, text)?;
        }
        Ok(set)
    }

    /// Rules from a file, or from every `*.toml` file under a directory (sorted by path).
    pub fn add_path(&mut self, path: &Path) -> Result<(), RuleError> {
        let io = |e: std::io::Error| RuleError {
            file: path.display().to_string(),
            line: 0,
            rule: None,
            message: e.to_string(),
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = Vec::new();
            let mut stack = vec![path.to_path_buf()];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).map_err(io)? {
                    let p = e.map_err(io)?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "toml") {
                        files.push(p);
                    }
                }
            }
            files.sort();
            for f in files {
                self.add_path(&f)?;
            }
            return Ok(());
        }
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_RULE_FILE_LEN as u64 {
            return Err(RuleError {
                file: path.display().to_string(),
                line: 0,
                rule: None,
                message: format!("larger than {MAX_RULE_FILE_LEN} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        self.add_text(&path.display().to_string(), &text)
    }

    /// Rules from one pack's text.
    pub fn add_text(&mut self, path: &str, text: &str) -> Result<(), RuleError> {
        let file = SourceFile::new(path, text);
        let pack: spec::PackSpec = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            file.error(offset, None, e.message().to_owned())
        })?;
        for r in &pack.rules {
            let start = r.span().start;
            let r = r.get_ref();
            let id = r.id.get_ref().clone();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            {
                return Err(file.error(
                    r.id.span().start,
                    None,
                    format!("bad rule id {id:?} (letters, digits, - _ .)"),
                ));
            }
            if self.rules.iter().any(|x| x.id == id) {
                return Err(file.error(r.id.span().start, Some(&id), "duplicate rule id"));
            }
            if self.rules.len() >= MAX_RULES {
                return Err(file.error(start, Some(&id), format!("more than {MAX_RULES} rules")));
            }
            let severity = Severity::parse(r.severity.get_ref()).ok_or_else(|| {
                file.error(
                    r.severity.span().start,
                    Some(&id),
                    format!(
                        "severity {:?} is not one of {}",
                        r.severity.get_ref(),
                        Severity::NAMES.join(", ")
                    ),
                )
            })?;
            let category = CATEGORIES
                .iter()
                .find(|c| **c == r.category.get_ref())
                .copied()
                .ok_or_else(|| {
                    file.error(
                        r.category.span().start,
                        Some(&id),
                        format!(
                            "category {:?} is not one of {}",
                            r.category.get_ref(),
                            CATEGORIES.join(", ")
                        ),
                    )
                })?;
            let compiler = cond::Compiler {
                file: &file,
                rule: &id,
                lists: &pack.pack.lists,
                sql_leaves: std::cell::RefCell::new(&mut self.sql_leaves),
            };
            let when = compiler.compile(&r.when, 0)?;
            let field = |s: &toml::Spanned<String>| {
                Field::parse(s.get_ref()).ok_or_else(|| {
                    file.error(
                        s.span().start,
                        Some(&id),
                        format!("unknown field `{}`", s.get_ref()),
                    )
                })
            };
            let threshold = match &r.threshold {
                Some(t) => {
                    let span = t.span().start;
                    let t = t.get_ref();
                    if t.count == 0 || t.window_secs == 0 {
                        return Err(file.error(
                            span,
                            Some(&id),
                            "threshold count and window_secs must be positive",
                        ));
                    }
                    // A window keeps that many hits: a larger count could never be reached.
                    if t.count > correlate::MAX_HITS_PER_GROUP as u64 {
                        return Err(file.error(
                            span,
                            Some(&id),
                            format!(
                                "threshold count {} is over the {} hits a window keeps",
                                t.count,
                                correlate::MAX_HITS_PER_GROUP
                            ),
                        ));
                    }
                    Some(Threshold {
                        count: t.count,
                        window_secs: t.window_secs,
                        group_by: t.group_by.iter().map(field).collect::<Result<_, _>>()?,
                        distinct: t.distinct.as_ref().map(field).transpose()?,
                    })
                }
                None => None,
            };
            let accumulate = match &r.accumulate {
                Some(a) => {
                    let span = a.span().start;
                    let a = a.get_ref();
                    if a.at_least == 0 || a.window_secs == 0 {
                        return Err(file.error(
                            span,
                            Some(&id),
                            "accumulate at_least and window_secs must be positive",
                        ));
                    }
                    let f = field(&a.field)?;
                    if !matches!(f, Field::Rows | Field::LatencyUs) {
                        return Err(file.error(
                            a.field.span().start,
                            Some(&id),
                            "accumulate sums rows or latency_us",
                        ));
                    }
                    Some(Accumulate {
                        field: f,
                        at_least: a.at_least,
                        window_secs: a.window_secs,
                        group_by: a.group_by.iter().map(field).collect::<Result<_, _>>()?,
                    })
                }
                None => None,
            };
            let baseline = match &r.baseline {
                Some(b) => {
                    let b = b.get_ref();
                    Some(Baseline {
                        learn_secs: b.learn_secs,
                        key: b.key.iter().map(field).collect::<Result<_, _>>()?,
                        value: field(&b.value)?,
                    })
                }
                None => None,
            };
            if [
                threshold.is_some(),
                accumulate.is_some(),
                baseline.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count()
                > 1
            {
                return Err(file.error(
                    start,
                    Some(&id),
                    "a rule has at most one of threshold, accumulate, baseline",
                ));
            }
            let suppress_by = match &r.suppress_by {
                Some(list) => list.iter().map(field).collect::<Result<_, _>>()?,
                None => vec![Field::ClientIp, Field::User],
            };
            let examples = r
                .examples
                .as_ref()
                .map(|e| examples::Examples::compile(&file, &id, e))
                .transpose()?;
            self.rules.push(Rule {
                id: id.clone(),
                title: r.title.clone(),
                severity,
                category,
                description: r.description.clone(),
                tags: r.tags.clone(),
                when,
                threshold,
                accumulate,
                baseline,
                suppress_secs: r.suppress_secs,
                suppress_by,
                origin: format!("{}:{}", file.path, file.line_of(start)),
                examples,
            });
        }
        self.build_regex_sets()
            .map_err(|e| file.error(0, None, format!("rule regexes together: {e}")))
    }

    /// The results of every statement test for one statement (`shown`: its text as recorded),
    /// as bits by leaf index.
    pub fn statement_bits(&self, shown: &str, analysis: &crate::sql::Analysis) -> Vec<u64> {
        self.bits_of(Facts::of_statement(shown, analysis))
    }

    /// The statement bits of a record that carries no statement (a login, a ping, a cancel):
    /// every statement field is absent, so the results are the same for all such records and
    /// are computed once, when the rules are built.
    pub fn no_statement_bits(&self) -> &[u64] {
        &self.no_statement_bits
    }

    /// The statement tests' results, and the statement-only rules' verdicts, on the statement
    /// fields of `f` (the other fields are not read).
    fn bits_of(&self, f: Facts<'_>) -> Vec<u64> {
        // Not `vec![0; n]`: zeroed allocation (calloc) costs more than these few words.
        let words = (self.sql_leaves.len() + self.statement_rules.len()).div_ceil(64);
        let mut bits: Vec<u64> = std::iter::repeat_n(0, words).collect();
        // Without a statement there is no kind, and a `kind` test fails.
        if let Some(a) = f.analysis {
            // Every statement's kind (a batch's `SET …; DELETE …` is a delete too).
            let kind_bit = a
                .statements
                .iter()
                .fold(1u32 << (a.kind as u32), |bits, s| {
                    bits | 1u32 << (s.kind as u32)
                });
            for &(leaf, mask) in &self.sql_kind_masks {
                if mask & kind_bit != 0 {
                    set_bit(&mut bits, leaf);
                }
            }
        }
        for &leaf in &self.sql_other_leaves {
            if let Some((field, test)) = self.sql_leaves.get(leaf) {
                if cond::test_values(&f, *field, test) {
                    set_bit(&mut bits, leaf);
                }
            }
        }
        for group in &self.sql_regex_sets {
            f.each_value(group.field, |value| match &group.matcher {
                FieldMatcher::One(re) => {
                    if re.is_match(value) {
                        group
                            .leaves
                            .iter()
                            .for_each(|&leaf| set_bit(&mut bits, leaf));
                    }
                }
                FieldMatcher::Set(set) => {
                    for pattern in set.matches(value).iter() {
                        if let Some(&leaf) = group.leaves.get(pattern) {
                            set_bit(&mut bits, leaf);
                        }
                    }
                }
            });
        }
        // The statement-only rules, on the leaf bits just computed (their own bits come after
        // the leaves', so setting them changes no leaf), 64 at a time.
        for chunk in self.statement_rules.chunks(64) {
            let mut verdicts = 0u64;
            {
                let f = Facts {
                    sql_bits: Some(&bits),
                    ..f.clone()
                };
                for (j, (rule, _)) in chunk.iter().enumerate() {
                    if self
                        .rules
                        .get(*rule)
                        .is_some_and(|r| r.when.eval(&f, self.offset_min))
                    {
                        verdicts |= 1 << j;
                    }
                }
            }
            for (j, (_, bit)) in chunk.iter().enumerate() {
                if verdicts >> j & 1 == 1 {
                    set_bit(&mut bits, *bit);
                }
            }
        }
        bits
    }

    /// Sort the statement leaves by how they are tested: regexes grouped by field into
    /// [`FieldRegexSet`]s, `kind` equalities into masks, the rest one by one.
    fn build_regex_sets(&mut self) -> Result<(), regex::Error> {
        let mut groups: Vec<(Field, Vec<&cond::Rx>, Vec<usize>)> = Vec::new();
        self.statement_rules = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.when.statement_only())
            .enumerate()
            .map(|(j, (i, _))| (i, self.sql_leaves.len() + j))
            .collect();
        self.record_rules = (0..self.rules.len())
            .filter(|i| !self.statement_rules.iter().any(|(rule, _)| rule == i))
            .collect();
        self.prefilters = self.rules.iter().map(|r| Prefilter::of(&r.when)).collect();
        self.sql_kind_masks.clear();
        self.sql_other_leaves.clear();
        for (i, (field, test)) in self.sql_leaves.iter().enumerate() {
            let re = match test {
                cond::Test::Regex(re) => re,
                cond::Test::OneOf(items) if *field == Field::Kind => {
                    let mask = crate::sql::Kind::ALL
                        .iter()
                        .filter(|k| items.iter().any(|i| i.eq_ignore_ascii_case(k.as_str())))
                        .fold(0u32, |m, k| m | 1 << (*k as u32));
                    self.sql_kind_masks.push((i, mask));
                    continue;
                }
                _ => {
                    self.sql_other_leaves.push(i);
                    continue;
                }
            };
            match groups.iter_mut().find(|g| g.0 == *field) {
                Some(g) => {
                    g.1.push(re);
                    g.2.push(i);
                }
                None => groups.push((*field, vec![re], vec![i])),
            }
        }
        let mut sets = Vec::with_capacity(groups.len());
        for (field, regexes, leaves) in groups {
            let matcher = match regexes.as_slice() {
                [one] => FieldMatcher::One(one.regex().map_err(Clone::clone)?.clone()),
                many => FieldMatcher::Set(
                    regex::RegexSetBuilder::new(many.iter().map(|r| r.as_str()))
                        .size_limit(REGEX_SET_SIZE_LIMIT)
                        .build()?,
                ),
            };
            sets.push(FieldRegexSet {
                field,
                matcher,
                leaves,
            });
        }
        self.sql_regex_sets = sets;
        self.no_statement_bits = self.bits_of(Facts::no_statement());
        Ok(())
    }

    /// Indices of the rules whose condition the record meets.
    pub fn matches(&self, f: &Facts<'_>, out: &mut Matches) {
        out.clear();
        let admitted = |i: usize| {
            self.prefilters.get(i).is_none_or(|p| p.admits(f))
                && self
                    .rules
                    .get(i)
                    .is_some_and(|r| r.when.eval(f, self.offset_min))
        };
        if let Some(bits) = f.sql_bits {
            // The statement-only rules' verdicts are among the statement bits: read, not
            // evaluated; only the other rules are looked at, and the two lists are merged back
            // into rule order (hits, and so alerts, follow it).
            for &(rule, bit) in &self.statement_rules {
                if bit_is_set(bits, bit) {
                    out.push(rule as u16);
                }
            }
            let from_statement = out.len();
            for &i in &self.record_rules {
                if admitted(i) {
                    out.push(i as u16);
                }
            }
            if from_statement > 0 && out.len() > from_statement {
                out.sort_unstable();
            }
            return;
        }
        // No statement bits (a record without a statement, or a caller that did not compute
        // them): every rule is evaluated.
        for i in 0..self.rules.len() {
            if admitted(i) {
                out.push(i as u16);
            }
        }
    }
}

/// Parse a `--tz` value: `UTC`, `+08:00`, `-05:30`, `+8`.
pub fn parse_offset(s: &str) -> Option<i32> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None => (rest.parse::<i32>().ok()?, 0),
    };
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}
