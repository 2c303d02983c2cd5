//! The correlator: threshold windows and alert suppression, fed with rule hits in the writer's
//! merged record order (the same for any number of workers), in packet time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::Range;

// foldhash rather than SipHash: the group keys (users, addresses) come from the wire, so the
// hasher stays seeded per process, but it is several times cheaper; every hit looks one up.
use foldhash::{HashMap, HashSet};

use dbtap_core::Timestamp;

use super::baseline::{BaselineFile, RuleBaseline};
use super::facts::{Facts, Field};
use super::RuleSet;

/// Groups tracked at once (threshold windows and suppression periods); over it, the tables are
/// emptied and the drop counted (bounded memory under a flood of distinct clients).
pub const MAX_GROUPS: usize = 100_000;
/// Hits kept per threshold group: enough for any count threshold; over it the oldest go.
pub const MAX_HITS_PER_GROUP: usize = 4096;
/// Slices an accumulator's window is cut into (see `Sum`): its memory per group, and the
/// precision of its start (W / this).
pub const ACCUMULATOR_SLICES: usize = 4096;

/// A record meeting a rule's condition, as the correlator needs it. The key texts are borrowed:
/// from the record batch that carries the hit ([`HitRec::view`]), or from a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub rule: u16,
    pub ts: Timestamp,
    pub session_id: u64,
    /// Values of the threshold's `group_by` fields.
    pub group: &'a str,
    /// Value of the threshold's `distinct` field.
    pub distinct: Option<&'a str>,
    /// Values of the rule's `suppress_by` fields.
    pub suppress: &'a str,
    /// The accumulated field's value (accumulate rules).
    pub amount: u64,
}

/// A hit as a record batch carries it from the record thread to the writer: its key texts are
/// ranges of one text buffer of the batch (reused from batch to batch). A `String` per key cost
/// an allocation per hit in the record thread and a free from another thread in the writer,
/// about 500 instructions per record with the default rules (most records hit the baseline and
/// accumulate rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitRec {
    rule: u16,
    ts: Timestamp,
    session_id: u64,
    group: Range<usize>,
    distinct: Option<Range<usize>>,
    suppress: Range<usize>,
    amount: u64,
}

/// Appends the values of `fields` to `keys` (separated by U+001F); returns where they are.
fn key_into(f: &Facts<'_>, fields: &[Field], keys: &mut String) -> Range<usize> {
    let start = keys.len();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            keys.push('\u{1f}');
        }
        f.append_values(*field, keys);
    }
    start..keys.len()
}

impl HitRec {
    /// The hit of rule `rule` on the record `f`, its key texts appended to `keys`.
    pub fn new(rules: &RuleSet, rule: u16, f: &Facts<'_>, keys: &mut String) -> HitRec {
        let r = &rules.rules[usize::from(rule)];
        let (group, distinct) = match (&r.threshold, &r.accumulate, &r.baseline) {
            (Some(t), _, _) => (
                key_into(f, &t.group_by, keys),
                t.distinct.map(|d| key_into(f, &[d], keys)),
            ),
            (_, Some(a), _) => (key_into(f, &a.group_by, keys), None),
            (_, _, Some(b)) => (
                key_into(f, &b.key, keys),
                Some(key_into(f, &[b.value], keys)),
            ),
            _ => (keys.len()..keys.len(), None),
        };
        let amount = r.accumulate.as_ref().map_or(0, |a| match a.field {
            Field::LatencyUs => f.latency_us.unwrap_or(0),
            _ => f.rows.unwrap_or(0),
        });
        // Only suppression reads it (the frequent hits of baseline and accumulator rules
        // usually have none: no key to build then).
        let suppress = if r.suppress_secs > 0 {
            key_into(f, &r.suppress_by, keys)
        } else {
            keys.len()..keys.len()
        };
        HitRec {
            rule,
            ts: f.ts,
            session_id: f.session_id,
            group,
            distinct,
            suppress,
            amount,
        }
    }

    /// The hit, its keys read from the text they were appended to.
    pub fn view<'a>(&self, keys: &'a str) -> Hit<'a> {
        let text = |r: &Range<usize>| keys.get(r.clone()).unwrap_or_default();
        Hit {
            rule: self.rule,
            ts: self.ts,
            session_id: self.session_id,
            group: text(&self.group),
            distinct: self.distinct.as_ref().map(text),
            suppress: text(&self.suppress),
            amount: self.amount,
        }
    }
}

/// What a threshold alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdInfo {
    pub group: String,
    pub count: u64,
    pub window_secs: u64,
    /// Session ids and timestamps of the records in the window (at most the threshold count).
    pub records: Vec<(u64, Timestamp)>,
}

/// What an accumulator alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccumulateInfo {
    pub group: String,
    /// The sum that reached the bound (the excess over `at_least` carries on).
    pub sum: u64,
    pub at_least: u64,
    pub window_secs: u64,
    /// Session id and timestamp of the first record of each slice of the window that
    /// counted (see `Sum`): every record when they are more than W/4096 apart.
    pub records: Vec<(u64, Timestamp)>,
}

/// What a baseline alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineInfo {
    pub key: String,
    /// The value never seen for that key.
    pub value: String,
}

/// An alert to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub rule: u16,
    pub ts: Timestamp,
    /// Alerts of this rule and group held back since the last one written.
    pub suppressed: u64,
    pub threshold: Option<ThresholdInfo>,
    pub accumulate: Option<AccumulateInfo>,
    pub baseline: Option<BaselineInfo>,
}

/// Values remembered per baseline in all (over it, learning stops and the event is counted).
pub const MAX_BASELINE_VALUES: usize = 1_000_000;

/// An accumulator's window: its records' amounts, in slices of 1/[`ACCUMULATOR_SLICES`] of the
/// window (each with the session and time of its first record and the time of its last), and
/// their total. A record joins the last slice while it is that young, so the slices cover the
/// whole window however many records it holds: a busy pooled session runs tens of thousands
/// of statements an hour, and keeping only its last 4,096 records let an export spread over
/// the hour go unseen. A slice leaves the window with its last record, so the sum may count
/// records up to one slice (W/4096: 0.9 s of an hour) older than the window, never fewer.
#[derive(Default)]
struct Sum {
    slices: VecDeque<Slice>,
    total: u64,
}

#[derive(Clone, Copy)]
struct Slice {
    first: Timestamp,
    last: Timestamp,
    session_id: u64,
    amount: u64,
}

impl Sum {
    /// Add a record's amount; drop the slices whose last record left the window
    /// (`window_ns` before `ts`).
    fn add(&mut self, ts: Timestamp, session_id: u64, amount: u64, window_ns: u64) {
        let width = (window_ns / ACCUMULATOR_SLICES as u64).max(1);
        match self.slices.back_mut() {
            // Records come in record order, their times near enough: one from before the
            // slice started joins it too.
            Some(b) if ts.0.saturating_sub(b.first.0) < width => {
                b.amount = b.amount.saturating_add(amount);
                b.last = b.last.max(ts);
            }
            _ => self.slices.push_back(Slice {
                first: ts,
                last: ts,
                session_id,
                amount,
            }),
        }
        self.total = self.total.saturating_add(amount);
        while self
            .slices
            .front()
            .is_some_and(|f| ts.0.saturating_sub(f.last.0) > window_ns)
            || self.slices.len() > ACCUMULATOR_SLICES
        {
            if let Some(f) = self.slices.pop_front() {
                self.total = self.total.saturating_sub(f.amount);
            }
        }
    }
}

#[derive(Default)]
struct Window {
    hits: VecDeque<(Timestamp, u64, Option<String>)>,
    /// Hits in `hits` per `distinct` value (a missing value counts as ""), for rules with a
    /// distinct field: the count of distinct values is this map's size, kept as hits come and
    /// go. Recounting the window on every hit cost up to `MAX_HITS_PER_GROUP` comparisons per
    /// failed login of a client that keeps failing with the same few users.
    distinct: hashbrown::HashMap<String, u32, foldhash::fast::RandomState>,
}

impl Window {
    fn push(&mut self, hit: (Timestamp, u64, Option<String>), counted: bool) {
        if counted {
            *self
                .distinct
                .entry_ref(hit.2.as_deref().unwrap_or(""))
                .or_insert(0) += 1;
        }
        self.hits.push_back(hit);
    }

    fn pop_front(&mut self) {
        let Some((_, _, d)) = self.hits.pop_front() else {
            return;
        };
        let d = d.as_deref().unwrap_or("");
        if let Some(n) = self.distinct.get_mut(d) {
            *n -= 1;
            if *n == 0 {
                self.distinct.remove(d);
            }
        }
    }

    fn clear(&mut self) {
        self.hits.clear();
        self.distinct.clear();
    }
}

struct Suppression {
    until: Timestamp,
    /// Alerts held back in this period, not reported yet.
    held: u64,
    /// Times of the first and the last of them.
    first_held: Timestamp,
    last_held: Timestamp,
}

/// Why a suppression period's held-back alerts are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Capture time passed the period's end.
    Period,
    /// The run ended inside the period.
    CaptureEnd,
    /// The group tables were emptied at [`MAX_GROUPS`].
    GroupsDropped,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Period => "period",
            Ended::CaptureEnd => "capture_end",
            Ended::GroupsDropped => "groups_dropped",
        }
    }
}

/// A suppression period that held alerts back: they are reported by a line of their own, so a
/// brute force that went on after its first alert shows how long and how often, even when no
/// alert of the group follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub rule: u16,
    /// The `suppress_by` values (separated by U+001F).
    pub group: String,
    pub held: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    /// The period's end.
    pub until: Timestamp,
    pub ended: Ended,
}

/// Per-rule tables keyed by a group string. Nested rather than keyed by `(rule, String)` so that
/// a hit on a group already tracked is looked up by `&str` and allocates nothing: every
/// accumulate hit (in the default rules, every SELECT) looks its group up.
struct Groups<V> {
    by_rule: HashMap<u16, hashbrown::HashMap<String, V, foldhash::fast::RandomState>>,
    /// Groups over all rules (bounded by [`MAX_GROUPS`]).
    len: usize,
}

impl<V> Default for Groups<V> {
    fn default() -> Self {
        Groups {
            by_rule: HashMap::default(),
            len: 0,
        }
    }
}

impl<V> Groups<V> {
    /// The tables hold [`MAX_GROUPS`] groups: the next new one empties them.
    fn is_full(&self) -> bool {
        self.len >= MAX_GROUPS
    }

    /// Empties the tables when they are full; returns whether it did.
    fn make_room(&mut self) -> bool {
        if !self.is_full() {
            return false;
        }
        self.by_rule.clear();
        self.len = 0;
        true
    }

    fn get_mut(&mut self, rule: u16, group: &str) -> Option<&mut V> {
        self.by_rule.get_mut(&rule)?.get_mut(group)
    }

    /// The group's entry, made with `new` (and the group copied) only when it is not tracked yet.
    fn get_or_insert_with(&mut self, rule: u16, group: &str, new: impl FnOnce() -> V) -> &mut V {
        let len = &mut self.len;
        self.by_rule
            .entry(rule)
            .or_default()
            .entry_ref(group)
            .or_insert_with(|| {
                *len += 1;
                new()
            })
    }
}

/// Counters of the correlator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrelatorStats {
    pub hits: u64,
    pub fired: u64,
    pub suppressed: u64,
    /// Suppression periods that held alerts back, reported by a line of their own.
    pub suppression_reports: u64,
    /// Times the group tables were emptied at [`MAX_GROUPS`].
    pub groups_dropped: u64,
    /// Baseline values not learned because the baseline was full.
    pub baseline_full: u64,
}

#[derive(Default)]
pub struct Correlator {
    windows: Groups<Window>,
    sums: Groups<Sum>,
    /// Per baseline rule: when learning started, and the values seen per key.
    learning_start: HashMap<u16, Timestamp>,
    /// Per baseline rule, per key: the values seen (nested so that a lookup needs no owned
    /// key: every statement of a baseline rule is looked up).
    known: HashMap<u16, HashMap<String, HashSet<String>>>,
    known_values: usize,
    suppression: Groups<Suppression>,
    /// Suppression periods holding alerts back, soonest end first: (end, rule, group). An entry
    /// whose group has since started another period is passed over when it comes up.
    closing: BinaryHeap<Reverse<(Timestamp, u16, String)>>,
    /// Periods that held alerts back and are over, to be written ([`Correlator::take_closed`]).
    closed: Vec<Closed>,
    /// Baselines loaded for rules this run does not have: saved again unchanged.
    carried_baselines: std::collections::BTreeMap<String, RuleBaseline>,
    pub stats: CorrelatorStats,
}

/// What loading a baseline file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineSeed {
    /// Rules whose learnt values were taken, and the values.
    pub rules: u64,
    pub values: u64,
    /// Rules of the file not in this run's rules (kept in the file unchanged).
    pub absent_rules: Vec<String>,
    /// Rules whose key or value fields changed since the file was written (learning starts
    /// over for them).
    pub changed_rules: Vec<String>,
}

fn field_names(fields: &[Field]) -> Vec<String> {
    fields.iter().map(|f| f.name().to_owned()).collect()
}

impl Correlator {
    /// Take the learnt baselines of `file` (see [`super::baseline`]).
    pub fn seed_baselines(&mut self, rules: &RuleSet, file: &BaselineFile) -> BaselineSeed {
        let mut seed = BaselineSeed::default();
        for (id, learnt) in &file.rules {
            let found = rules
                .rules
                .iter()
                .enumerate()
                .find(|(_, r)| r.id == *id && r.baseline.is_some());
            let Some((i, rule)) = found else {
                seed.absent_rules.push(id.clone());
                self.carried_baselines.insert(id.clone(), learnt.clone());
                continue;
            };
            let (Some(b), Ok(i)) = (&rule.baseline, u16::try_from(i)) else {
                continue;
            };
            if learnt.key_fields != field_names(&b.key) || learnt.value_field != b.value.name() {
                seed.changed_rules.push(id.clone());
                continue;
            }
            self.learning_start
                .insert(i, Timestamp(learnt.learning_started_ns));
            for (key, values) in &learnt.known {
                for v in values {
                    if self.known_values >= MAX_BASELINE_VALUES {
                        self.stats.baseline_full += 1;
                        continue;
                    }
                    if self
                        .known
                        .entry(i)
                        .or_default()
                        .entry(key.clone())
                        .or_default()
                        .insert(v.clone())
                    {
                        self.known_values += 1;
                        seed.values += 1;
                    }
                }
            }
            seed.rules += 1;
        }
        seed
    }

    /// The learnt baselines, to save for the next run.
    pub fn export_baselines(&self, rules: &RuleSet) -> BaselineFile {
        let mut file = BaselineFile::new();
        file.rules = self.carried_baselines.clone();
        for (i, r) in rules.rules.iter().enumerate() {
            let (Some(b), Ok(idx)) = (&r.baseline, u16::try_from(i)) else {
                continue;
            };
            let Some(start) = self.learning_start.get(&idx) else {
                continue;
            };
            let known = self
                .known
                .get(&idx)
                .into_iter()
                .flatten()
                .map(|(key, values)| (key.clone(), values.iter().cloned().collect()))
                .collect();
            file.rules.insert(
                r.id.clone(),
                RuleBaseline {
                    key_fields: field_names(&b.key),
                    value_field: b.value.name().to_owned(),
                    learning_started_ns: start.0,
                    known,
                },
            );
        }
        file
    }
}

impl Correlator {
    /// Ends the suppression periods that are over at `now` (capture time) and held alerts back:
    /// each becomes a [`Closed`] report. Called before each hit is offered, so the reports come
    /// in the records' order.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some(Reverse((until, _, _))) = self.closing.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((until, rule, group))) = self.closing.pop() else {
                break;
            };
            let Some(s) = self.suppression.get_mut(rule, &group) else {
                continue;
            };
            if s.until != until || s.held == 0 {
                continue;
            }
            self.closed.push(Closed {
                rule,
                group,
                held: std::mem::take(&mut s.held),
                first: s.first_held,
                last: s.last_held,
                until,
                ended: Ended::Period,
            });
        }
    }

    /// Reports every period still holding alerts back (the run ends, or the tables are about to
    /// be emptied), in (end, rule, group) order.
    pub fn close_all(&mut self, ended: Ended) {
        let mut open: Vec<Closed> = Vec::new();
        for (rule, groups) in &mut self.suppression.by_rule {
            for (group, s) in groups.iter_mut().filter(|(_, s)| s.held > 0) {
                open.push(Closed {
                    rule: *rule,
                    group: group.clone(),
                    held: std::mem::take(&mut s.held),
                    first: s.first_held,
                    last: s.last_held,
                    until: s.until,
                    ended,
                });
            }
        }
        open.sort_by(|a, b| (a.until, a.rule, &a.group).cmp(&(b.until, b.rule, &b.group)));
        self.closed.append(&mut open);
    }

    /// The periods ended since the last call, to be written.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, Closed> {
        self.closed.drain(..)
    }

    /// Take one hit; returns the alert to write, if any.
    pub fn offer(&mut self, rules: &RuleSet, hit: &Hit<'_>) -> Option<Fired> {
        self.stats.hits += 1;
        let rule = rules.rules.get(usize::from(hit.rule))?;
        let threshold = match &rule.threshold {
            None => None,
            Some(t) => {
                if self.windows.make_room() {
                    self.stats.groups_dropped += 1;
                }
                let w = self
                    .windows
                    .get_or_insert_with(hit.rule, hit.group, Window::default);
                let window_ns = t.window_secs.saturating_mul(1_000_000_000);
                w.push(
                    (hit.ts, hit.session_id, hit.distinct.map(str::to_owned)),
                    t.distinct.is_some(),
                );
                while w
                    .hits
                    .front()
                    .is_some_and(|(ts, _, _)| hit.ts.0.saturating_sub(ts.0) > window_ns)
                {
                    w.pop_front();
                }
                while w.hits.len() > MAX_HITS_PER_GROUP {
                    w.pop_front();
                }
                let count = match t.distinct {
                    Some(_) => w.distinct.len() as u64,
                    None => w.hits.len() as u64,
                };
                if count < t.count {
                    return None;
                }
                let records = w.hits.iter().map(|(ts, s, _)| (*s, *ts)).collect();
                // The window starts over: the next alert needs as many new hits.
                w.clear();
                Some(ThresholdInfo {
                    group: hit.group.to_owned(),
                    count,
                    window_secs: t.window_secs,
                    records,
                })
            }
        };
        let accumulate = match &rule.accumulate {
            None => None,
            Some(a) => {
                if self.sums.make_room() {
                    self.stats.groups_dropped += 1;
                }
                let w = self
                    .sums
                    .get_or_insert_with(hit.rule, hit.group, Sum::default);
                let window_ns = a.window_secs.saturating_mul(1_000_000_000);
                w.add(hit.ts, hit.session_id, hit.amount, window_ns);
                if w.total < a.at_least {
                    return None;
                }
                let info = AccumulateInfo {
                    group: hit.group.to_owned(),
                    sum: w.total,
                    at_least: a.at_least,
                    window_secs: a.window_secs,
                    records: w.slices.iter().map(|s| (s.session_id, s.first)).collect(),
                };
                // The excess carries over, so that the next alert needs `at_least` more.
                let rest = w.total - a.at_least;
                w.slices.clear();
                w.total = 0;
                if rest > 0 {
                    w.add(hit.ts, hit.session_id, rest, window_ns);
                }
                Some(info)
            }
        };
        let baseline = match &rule.baseline {
            None => None,
            Some(b) => {
                let start = *self.learning_start.entry(hit.rule).or_insert(hit.ts);
                let learning =
                    hit.ts.0.saturating_sub(start.0) < b.learn_secs.saturating_mul(1_000_000_000);
                let value = hit.distinct.unwrap_or_default();
                let known = self
                    .known
                    .get(&hit.rule)
                    .and_then(|keys| keys.get(hit.group))
                    .is_some_and(|set| set.contains(value));
                if !known {
                    if self.known_values < MAX_BASELINE_VALUES {
                        self.known
                            .entry(hit.rule)
                            .or_default()
                            .entry(hit.group.to_owned())
                            .or_default()
                            .insert(value.to_owned());
                        self.known_values += 1;
                    } else {
                        self.stats.baseline_full += 1;
                    }
                }
                if learning || known {
                    return None;
                }
                Some(BaselineInfo {
                    key: hit.group.to_owned(),
                    value: value.to_owned(),
                })
            }
        };
        let mut suppressed = 0;
        if rule.suppress_secs > 0 {
            if self.suppression.is_full() {
                // Report what the tables hold back before they are emptied.
                self.close_all(Ended::GroupsDropped);
                self.closing.clear();
            }
            if self.suppression.make_room() {
                self.stats.groups_dropped += 1;
            }
            let until = Timestamp(
                hit.ts
                    .0
                    .saturating_add(rule.suppress_secs.saturating_mul(1_000_000_000)),
            );
            let mut first = false;
            let s = self
                .suppression
                .get_or_insert_with(hit.rule, hit.suppress, || {
                    first = true;
                    Suppression {
                        until,
                        held: 0,
                        first_held: hit.ts,
                        last_held: hit.ts,
                    }
                });
            if !first {
                if hit.ts < s.until {
                    if s.held == 0 {
                        s.first_held = hit.ts;
                        self.closing
                            .push(Reverse((s.until, hit.rule, hit.suppress.to_owned())));
                    }
                    s.held += 1;
                    s.last_held = hit.ts;
                    self.stats.suppressed += 1;
                    return None;
                }
                // Held-back alerts are reported when their period ends (`expire`), before any
                // later hit is offered; this is what a caller that never expires still gets.
                suppressed = std::mem::take(&mut s.held);
                s.until = until;
            }
        }
        self.stats.fired += 1;
        Some(Fired {
            rule: hit.rule,
            ts: hit.ts,
            suppressed,
            threshold,
            accumulate,
            baseline,
        })
    }
}
