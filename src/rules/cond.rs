//! Conditions, compiled once from their spec and evaluated on every record.

use std::net::IpAddr;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use toml::Spanned;

use super::facts::{Facts, Field, FIELD_NAMES};
use super::spec::CondSpec;
use super::{RuleError, SourceFile};

/// Deepest nesting of all/any/not accepted.
pub const MAX_DEPTH: usize = 32;

/// A compiled condition.
#[derive(Debug)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Test(Field, Test),
    /// A test on a field derived from the statement text alone (sql, kind, command, objects,
    /// fingerprint, normalized): evaluated once per distinct statement by the SQL stage, whose
    /// cached result bits the record carries; index into [`super::RuleSet::sql_leaves`].
    SqlLeaf(u32),
    /// Several [`Cond::SqlLeaf`]s of one `all` (`all: true`) or `any`, tested together as bit
    /// masks over the statement bits: (word, mask) pairs, and the leaf indices for records
    /// without cached bits.
    SqlLeaves {
        all: bool,
        masks: Vec<(u32, u64)>,
        leaves: Vec<u32>,
    },
    /// Time of day window in minutes after midnight (`from > to` wraps midnight) and weekday
    /// mask (bit 0 = Monday); local time = UTC + the rule set's offset.
    Clock {
        from: u16,
        to: u16,
        days: u8,
    },
}

#[derive(Debug)]
pub enum Test {
    /// Case-insensitive equality with any of these.
    OneOf(Vec<String>),
    Regex(Rx),
    Cmp(CmpOp, f64),
    Cidr(Vec<Net>),
    Exists(bool),
}

#[derive(Debug, Clone, Copy)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// An IP network.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    addr: IpAddr,
    bits: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Net { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// Compiled size limit of a `regex` test (a glob list has the regex crate's default).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The regex of a `regex`, `glob` or `glob_list` test.
///
/// A test on a statement field is run through its field's regex set (see
/// `RuleSet::build_regex_sets`), which compiles the pattern again with the field's others. Its
/// own compiled form serves only records evaluated without statement bits (rule examples), so
/// it is built on first use, not when the rules load: compiling each such pattern twice was
/// half the start-up cost of the default pack. Its syntax is still checked at load, with the
/// same message a compile gives. Every other test is compiled at load.
#[derive(Debug)]
pub struct Rx {
    pattern: String,
    compiled: OnceLock<Result<Regex, regex::Error>>,
}

impl Rx {
    /// Compiled now, under `size_limit` (`None`: the regex crate's default). Errs with the
    /// compiler's message.
    fn compiled(pattern: String, size_limit: Option<usize>) -> Result<Rx, String> {
        let mut b = RegexBuilder::new(&pattern);
        if let Some(limit) = size_limit {
            b.size_limit(limit);
        }
        let re = b.build().map_err(|e| e.to_string())?;
        Ok(Rx {
            pattern,
            compiled: OnceLock::from(Ok(re)),
        })
    }

    /// The test's regex on field `f`: checked now and compiled on first use on a statement
    /// field, compiled now under `size_limit` on any other.
    fn for_field(f: Field, pattern: String, size_limit: Option<usize>) -> Result<Rx, String> {
        if f.is_statement() {
            Rx::checked(pattern)
        } else {
            Rx::compiled(pattern, size_limit)
        }
    }

    /// Syntax checked now, compiled on first use. The error text is the one `Regex::new`
    /// gives for a syntax error (it is the parser's own message).
    fn checked(pattern: String) -> Result<Rx, String> {
        regex_syntax::parse(&pattern).map_err(|e| e.to_string())?;
        Ok(Rx {
            pattern,
            compiled: OnceLock::new(),
        })
    }

    /// The pattern.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The compiled regex. A lazily compiled pattern gets the size limit of a regex set: the
    /// set it belongs to compiled, so it does too.
    pub fn regex(&self) -> Result<&Regex, &regex::Error> {
        self.compiled
            .get_or_init(|| {
                RegexBuilder::new(&self.pattern)
                    .size_limit(super::REGEX_SET_SIZE_LIMIT)
                    .build()
            })
            .as_ref()
    }

    fn is_match(&self, value: &str) -> bool {
        self.regex().is_ok_and(|re| re.is_match(value))
    }

    /// Whether the pattern has been compiled on its own yet.
    #[cfg(test)]
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }
}

/// `*` any run, `?` one character, everything else literal; whole value, case-insensitive.
pub fn glob_regex(glob: &str) -> Result<Regex, regex::Error> {
    Regex::new(&glob_pattern(glob))
}

/// The regex text of a glob (`*` any run, `?` any one character, everything else literal),
/// anchored and case-insensitive.
fn glob_pattern(glob: &str) -> String {
    let mut re = String::from("(?is)^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4]))),
        }
    }
    re.push('$');
    re
}

fn lit(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Compile context: the file (for line numbers), the rule id and the pack's lists.
pub struct Compiler<'a> {
    pub file: &'a SourceFile,
    pub rule: &'a str,
    pub lists: &'a std::collections::BTreeMap<String, Vec<String>>,
    /// Statement-derived tests of the whole rule set, appended to as rules compile.
    pub sql_leaves: std::cell::RefCell<&'a mut Vec<(Field, Test)>>,
}

impl Compiler<'_> {
    fn leaf(&self, f: Field, t: Test) -> Cond {
        if f.is_statement() {
            let mut leaves = self.sql_leaves.borrow_mut();
            leaves.push((f, t));
            Cond::SqlLeaf((leaves.len() - 1) as u32)
        } else {
            Cond::Test(f, t)
        }
    }
}

impl Compiler<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> Result<T, RuleError> {
        Err(self.file.error(span.start, Some(self.rule), msg))
    }

    pub fn compile(&self, spec: &Spanned<CondSpec>, depth: usize) -> Result<Cond, RuleError> {
        let span = spec.span();
        let c = spec.get_ref();
        if depth > MAX_DEPTH {
            return self.err(span, format!("conditions nested deeper than {MAX_DEPTH}"));
        }
        let kinds = [
            c.all.is_some(),
            c.any.is_some(),
            c.not.is_some(),
            c.field.is_some(),
            c.time.is_some() || c.days.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return self.err(
                span,
                "a condition has exactly one of `all`, `any`, `not`, `field` (with one test), or `time`/`days`",
            );
        }
        if let Some(list) = &c.all {
            return Ok(group_leaves(self.list(list, depth)?, true));
        }
        if let Some(list) = &c.any {
            return Ok(group_leaves(self.list(list, depth)?, false));
        }
        if let Some(inner) = &c.not {
            return Ok(Cond::Not(Box::new(self.compile(inner, depth + 1)?)));
        }
        if c.time.is_some() || c.days.is_some() {
            return self.clock(c, span);
        }
        let Some(field) = &c.field else {
            return self.err(span, "missing `field`");
        };
        let Some(f) = Field::parse(field.get_ref()) else {
            let known: Vec<&str> = FIELD_NAMES.iter().map(|(n, _)| *n).collect();
            return self.err(
                field.span(),
                format!(
                    "unknown field `{}` (known: {})",
                    field.get_ref(),
                    known.join(", ")
                ),
            );
        };
        let mut tests = Vec::new();
        if let Some(v) = &c.equals {
            match lit(v.get_ref()) {
                Some(s) => tests.push(Test::OneOf(vec![s])),
                None => return self.err(v.span(), "`equals` takes a string, number or boolean"),
            }
        }
        if let Some(vs) = &c.in_values {
            let mut items = Vec::new();
            for v in vs.get_ref() {
                match lit(v) {
                    Some(s) => items.push(s),
                    None => return self.err(vs.span(), "`in` takes strings, numbers or booleans"),
                }
            }
            tests.push(Test::OneOf(items));
        }
        // A value the field can never have is a mistake that would keep the rule silent
        // for good (`kind = "selekt"`, `status = "failed"`, `protocol = "oracle"`): said at
        // load, with the values the field has.
        for (span, test) in [
            c.equals.as_ref().map(|v| v.span()),
            c.in_values.as_ref().map(|v| v.span()),
        ]
        .into_iter()
        .flatten()
        .zip(tests.iter())
        {
            if let Test::OneOf(items) = test {
                if items.is_empty() {
                    return self.err(span, "`in` lists no value: the test could never hold");
                }
                if let Some(known) = closed_vocabulary(f) {
                    if let Some(bad) = items.iter().find(|i| !cond_known(&known, i)) {
                        return self.err(
                            span,
                            format!(
                                "`{}` has no value {bad:?} (its values: {})",
                                f.name(),
                                known.join(", ")
                            ),
                        );
                    }
                }
                if f.is_numeric() {
                    if let Some(bad) = items.iter().find(|i| i.parse::<f64>().is_err()) {
                        return self.err(
                            span,
                            format!("`{}` is a number; {bad:?} is not one", f.name()),
                        );
                    }
                }
            }
        }
        if let Some(name) = &c.in_list {
            match self.lists.get(name.get_ref()) {
                Some(items) => tests.push(Test::OneOf(items.clone())),
                None => {
                    return self.err(
                        name.span(),
                        format!("no list `{}` in [pack.lists]", name.get_ref()),
                    )
                }
            }
        }
        if let Some(name) = &c.glob_list {
            let Some(items) = self.lists.get(name.get_ref()) else {
                return self.err(
                    name.span(),
                    format!("no list `{}` in [pack.lists]", name.get_ref()),
                );
            };
            tests.push(Test::Regex(self.globs(f, items, name.span())?));
        }
        if let Some(g) = &c.glob {
            tests.push(Test::Regex(self.globs(
                f,
                &g.get_ref().items(),
                g.span(),
            )?));
        }
        if let Some(r) = &c.regex {
            let items = r.get_ref().items();
            let joined = items
                .iter()
                .map(|i| format!("(?:{i})"))
                .collect::<Vec<_>>()
                .join("|");
            match Rx::for_field(f, joined, Some(REGEX_SIZE_LIMIT)) {
                Ok(rx) => tests.push(Test::Regex(rx)),
                Err(e) => return self.err(r.span(), format!("bad regex: {e}")),
            }
        }
        for (op, v) in [
            (CmpOp::Gt, c.gt),
            (CmpOp::Ge, c.ge),
            (CmpOp::Lt, c.lt),
            (CmpOp::Le, c.le),
        ] {
            if let Some(v) = v {
                if !f.is_numeric() {
                    return self.err(
                        field.span(),
                        format!(
                            "`gt` / `ge` / `lt` / `le` compare numbers: `{}` is not one \
                             (rows, latency_us, client_port, server_port are)",
                            f.name()
                        ),
                    );
                }
                tests.push(Test::Cmp(op, v));
            }
        }
        if let Some(nets) = &c.cidr {
            if !f.is_ip() {
                return self.err(
                    nets.span(),
                    "`cidr` applies to client_ip and server_ip only",
                );
            }
            let mut parsed = Vec::new();
            for n in nets.get_ref().items() {
                match Net::parse(&n) {
                    Some(net) => parsed.push(net),
                    None => return self.err(nets.span(), format!("bad network {n:?}")),
                }
            }
            tests.push(Test::Cidr(parsed));
        }
        if let Some(e) = c.exists {
            tests.push(Test::Exists(e));
        }
        match tests.len() {
            0 => self.err(field.span(), format!("field `{}` has no test (equals, in, in_list, glob, glob_list, regex, gt, ge, lt, le, cidr, exists)", field.get_ref())),
            1 => Ok(self.leaf(f, tests.remove(0))),
            _ => Ok(Cond::All(tests.into_iter().map(|t| self.leaf(f, t)).collect())),
        }
    }

    /// One regex matching any of the globs, compiled once: a glob's pattern escapes every
    /// character but its wildcards, so only the whole alternation can fail (by size), and
    /// compiling each glob on its own first, as a check, doubled the start-up cost of a pack.
    fn globs(
        &self,
        f: Field,
        items: &[String],
        span: std::ops::Range<usize>,
    ) -> Result<Rx, RuleError> {
        let alts: Vec<String> = items.iter().map(|item| glob_pattern(item)).collect();
        Rx::for_field(f, alts.join("|"), None).or_else(|e| self.err(span, format!("bad glob: {e}")))
    }

    fn list(&self, list: &[Spanned<CondSpec>], depth: usize) -> Result<Vec<Cond>, RuleError> {
        list.iter().map(|c| self.compile(c, depth + 1)).collect()
    }

    fn clock(&self, c: &CondSpec, span: std::ops::Range<usize>) -> Result<Cond, RuleError> {
        let (mut from, mut to) = (0u16, 24 * 60);
        if let Some(t) = &c.time {
            let v = t.get_ref();
            match (
                v.first().and_then(|s| parse_hhmm(s)),
                v.get(1).and_then(|s| parse_hhmm(s)),
            ) {
                (Some(a), Some(b)) if v.len() == 2 => (from, to) = (a, b),
                _ => {
                    return self.err(
                        t.span(),
                        "`time` is [\"HH:MM\", \"HH:MM\"] (the end excluded; it may wrap midnight)",
                    )
                }
            }
        }
        let mut days = 0x7f;
        if let Some(d) = &c.days {
            days = 0;
            for name in d.get_ref() {
                match DAYS.iter().position(|x| x.eq_ignore_ascii_case(name)) {
                    Some(i) => days |= 1 << i,
                    None => return self.err(d.span(), format!("unknown day {name:?} (mon … sun)")),
                }
            }
        }
        let _ = span;
        Ok(Cond::Clock { from, to, days })
    }
}

/// `all`/`any` of `children`, with their statement leaves merged into one [`Cond::SqlLeaves`]
/// tested first (the children have no side effects: the order does not change the result).
fn group_leaves(children: Vec<Cond>, all: bool) -> Cond {
    let (leaves, rest): (Vec<Cond>, Vec<Cond>) = children
        .into_iter()
        .partition(|c| matches!(c, Cond::SqlLeaf(_)));
    let wrap = |cs: Vec<Cond>| if all { Cond::All(cs) } else { Cond::Any(cs) };
    if leaves.len() < 2 {
        return wrap(leaves.into_iter().chain(rest).collect());
    }
    let leaves: Vec<u32> = leaves
        .iter()
        .filter_map(|c| match c {
            Cond::SqlLeaf(i) => Some(*i),
            _ => None,
        })
        .collect();
    let mut masks: Vec<(u32, u64)> = Vec::new();
    for &i in &leaves {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        match masks.iter_mut().find(|(w, _)| *w == word) {
            Some((_, m)) => *m |= bit,
            None => masks.push((word, bit)),
        }
    }
    let merged = Cond::SqlLeaves { all, masks, leaves };
    if rest.is_empty() {
        merged
    } else {
        wrap(std::iter::once(merged).chain(rest).collect())
    }
}

impl Cond {
    /// The condition reads statement fields only (its result is the same for every record of
    /// one statement text).
    pub fn statement_only(&self) -> bool {
        match self {
            Cond::All(cs) | Cond::Any(cs) => cs.iter().all(Cond::statement_only),
            Cond::Not(c) => c.statement_only(),
            Cond::SqlLeaf(_) | Cond::SqlLeaves { .. } => true,
            Cond::Test(..) | Cond::Clock { .. } => false,
        }
    }

    /// Does the record meet the condition? `offset_min`: local time − UTC, in minutes.
    pub fn eval(&self, f: &Facts<'_>, offset_min: i32) -> bool {
        match self {
            Cond::All(cs) => cs.iter().all(|c| c.eval(f, offset_min)),
            Cond::Any(cs) => cs.iter().any(|c| c.eval(f, offset_min)),
            Cond::Not(c) => !c.eval(f, offset_min),
            Cond::Clock { from, to, days } => {
                let secs = (f.ts.0 / 1_000_000_000) as i64 + i64::from(offset_min) * 60;
                let day_index = secs.div_euclid(86_400);
                let minute = (secs.rem_euclid(86_400) / 60) as u16;
                // 1970-01-01 was a Thursday (index 3 with Monday = 0).
                let weekday = (day_index + 3).rem_euclid(7) as u8;
                let in_time = if from <= to {
                    minute >= *from && minute < *to
                } else {
                    minute >= *from || minute < *to
                };
                in_time && days & (1 << weekday) != 0
            }
            Cond::SqlLeaf(i) => match f.sql_bits {
                Some(bits) => super::bit_is_set(bits, *i as usize),
                None => f
                    .rules
                    .and_then(|r| r.sql_leaves.get(*i as usize))
                    .is_some_and(|(field, test)| test_values(f, *field, test)),
            },
            Cond::SqlLeaves { all, masks, leaves } => match (f.sql_bits, *all) {
                (Some(bits), true) => masks
                    .iter()
                    .all(|(w, m)| bits.get(*w as usize).is_some_and(|b| b & m == *m)),
                (Some(bits), false) => masks
                    .iter()
                    .any(|(w, m)| bits.get(*w as usize).is_some_and(|b| b & m != 0)),
                (None, true) => leaves.iter().all(|i| Cond::SqlLeaf(*i).eval(f, offset_min)),
                (None, false) => leaves.iter().any(|i| Cond::SqlLeaf(*i).eval(f, offset_min)),
            },
            Cond::Test(field, test) => test_values(f, *field, test),
        }
    }
}

/// The `equals` / `in` comparison: `v` is one of `items`, ASCII case ignored.
pub fn one_of(items: &[String], v: &str) -> bool {
    items.iter().any(|i| i.eq_ignore_ascii_case(v))
}

/// Evaluate one field test on a record.
pub fn test_values(f: &Facts<'_>, field: Field, test: &Test) -> bool {
    // The common cases first, without building a value list.
    match test {
        Test::Cidr(nets) => {
            return f
                .ip(field)
                .is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
        }
        Test::Cmp(op, x) => {
            if let Some(n) = f.number(field) {
                return n.is_some_and(|n| match op {
                    CmpOp::Gt => n > *x,
                    CmpOp::Ge => n >= *x,
                    CmpOp::Lt => n < *x,
                    CmpOp::Le => n <= *x,
                });
            }
        }
        Test::OneOf(items) => {
            if let Some(v) = f.text(field) {
                return v.is_some_and(|v| one_of(items, v));
            }
        }
        Test::Regex(re) => {
            if let Some(v) = f.text(field) {
                return v.is_some_and(|v| re.is_match(v));
            }
        }
        Test::Exists(want) => {
            if let Some(v) = f.text(field) {
                return v.is_some() == *want;
            }
        }
    }
    let values = f.values(field);
    match test {
        Test::Exists(want) => values.iter().next().is_some() == *want,
        Test::OneOf(items) => values.iter().any(|v| one_of(items, v)),
        Test::Regex(re) => values.iter().any(|v| re.is_match(v)),
        Test::Cmp(op, x) => values.iter().any(|v| {
            v.parse::<f64>().is_ok_and(|n| match op {
                CmpOp::Gt => n > *x,
                CmpOp::Ge => n >= *x,
                CmpOp::Lt => n < *x,
                CmpOp::Le => n <= *x,
            })
        }),
        Test::Cidr(_) => false,
    }
}

/// The values a field with a closed set of them can have (`None`: any text).
fn closed_vocabulary(f: Field) -> Option<Vec<&'static str>> {
    match f {
        Field::Kind => Some(crate::sql::Kind::ALL.iter().map(|k| k.as_str()).collect()),
        Field::Unfiltered => Some(vec!["update", "delete"]),
        Field::Status => Some(vec!["ok", "error", "unknown"]),
        Field::Protocol => Some(crate::registry::ALL.iter().map(|p| p.name).collect()),
        Field::Flags => Some(crate::record::Flags::all_names().collect()),
        _ => None,
    }
}

/// `value` is one of `known` (ASCII case ignored, as the tests compare).
fn cond_known(known: &[&str], value: &str) -> bool {
    known.iter().any(|k| k.eq_ignore_ascii_case(value))
}
