//! The SQL stage of a worker: every statement record's text analysed (cached by text, so the
//! statements an application prepares once and executes many times are analysed once),
//! passwords redacted, literals masked when asked, ready for the record writer.

use std::collections::HashMap;

use super::{analyze, mask_literals, Analysis, Dialect};
use std::sync::Arc;

use crate::record::{render_analysis, render_str};
use crate::rules::RuleSet;

/// Statement texts remembered per worker; the cache is emptied when full (bounded memory, and
/// the working set of an application's statements refills it at once).
pub const MAX_CACHED_STATEMENTS: usize = 4096;
/// Longest text cached; longer ones are analysed each time (they are rare and rarely repeated).
pub const MAX_CACHED_SQL_LEN: usize = 4096;

/// `--mask`: what of the statement values reaches the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mask {
    /// Statements and bind values as sent (passwords are always redacted).
    #[default]
    None,
    /// Every literal in `sql` and every bind value replaced by `?` (fingerprints unchanged).
    Literals,
}

/// Options of the SQL stage.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    pub mask: Mask,
}

/// What the record writer needs of a statement.
#[derive(Debug)]
pub struct SqlView<'a> {
    /// The text as written to the record (passwords redacted, literals masked when asked).
    pub shown: &'a str,
    /// The text to write — the statement with passwords redacted (and literals masked) — as a
    /// JSON string.
    pub text_json: &'a [u8],
    pub analysis: &'a Analysis,
    /// The analysis fields, rendered (see [`crate::record::render_analysis`]).
    pub analysis_json: &'a [u8],
    /// The rule set's statement tests on this text (see [`crate::rules::Cond::SqlLeaf`]).
    pub rule_bits: &'a [u64],
    /// Bind values are written as `?`.
    pub mask_params: bool,
    /// The statement's dialect (for text kept beside it, such as `not_executed_sql`).
    pub dialect: Dialect,
}

struct Entry {
    dialect: Dialect,
    sql: Box<str>,
    analysis: Analysis,
    /// The text to write, and as a JSON string.
    shown: Option<String>,
    text_json: Vec<u8>,
    analysis_json: Vec<u8>,
    rule_bits: Vec<u64>,
}

impl Entry {
    fn new(dialect: Dialect, sql: &str, mask: Mask, rules: Option<&RuleSet>) -> Entry {
        let analysis = analyze(sql, dialect);
        let shown = analysis.redacted.as_deref().unwrap_or(sql);
        let mut text_json = Vec::with_capacity(shown.len() + 2);
        let shown = match mask {
            Mask::Literals => Some(mask_literals(shown, dialect).into_owned()),
            Mask::None => analysis.redacted.clone(),
        };
        render_str(shown.as_deref().unwrap_or(sql), &mut text_json);
        let mut analysis_json = Vec::with_capacity(64 + analysis.normalized.len());
        render_analysis(&analysis, &mut analysis_json);
        // Rules see the statement with passwords redacted but literals kept, whatever `--mask`
        // says: masking is about what is stored, not about what is detected.
        let rule_bits = rules.map_or_else(Vec::new, |r| {
            r.statement_bits(analysis.redacted.as_deref().unwrap_or(sql), &analysis)
        });
        Entry {
            dialect,
            sql: sql.into(),
            analysis,
            shown,
            text_json,
            analysis_json,
            rule_bits,
        }
    }
}

/// Counters of the SQL stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqlStats {
    /// Statement texts analysed (cache misses).
    pub analysed: u64,
    /// Records whose analysis came from the cache.
    pub cache_hits: u64,
    /// Records whose text had a password redacted.
    pub redacted: u64,
}

/// One worker's SQL stage.
#[derive(Default)]
pub struct SqlStage {
    opts: SqlOptions,
    rules: Option<Arc<RuleSet>>,
    cache: HashMap<u64, Entry, rustc_hash::FxBuildHasher>,
    /// The last uncacheable (long) statement.
    scratch: Option<Entry>,
    pub stats: SqlStats,
}

impl SqlStage {
    pub fn new(opts: SqlOptions, rules: Option<Arc<RuleSet>>) -> SqlStage {
        SqlStage {
            opts,
            rules,
            ..SqlStage::default()
        }
    }

    /// The analysis and output text of `sql`.
    pub fn view(&mut self, dialect: Dialect, sql: &str) -> SqlView<'_> {
        use std::collections::hash_map::Entry as Slot;
        let mask = self.opts.mask;
        let entry: &Entry = if sql.len() <= MAX_CACHED_SQL_LEN {
            let key = text_key(dialect, sql);
            if self.cache.len() >= MAX_CACHED_STATEMENTS && !self.cache.contains_key(&key) {
                self.cache.clear();
            }
            match self.cache.entry(key) {
                Slot::Occupied(o) => {
                    let e = o.into_mut();
                    if e.dialect == dialect && &*e.sql == sql {
                        self.stats.cache_hits += 1;
                    } else {
                        // A hash collision: the newer text takes the slot.
                        self.stats.analysed += 1;
                        *e = Entry::new(dialect, sql, mask, self.rules.as_deref());
                    }
                    e
                }
                Slot::Vacant(v) => {
                    self.stats.analysed += 1;
                    v.insert(Entry::new(dialect, sql, mask, self.rules.as_deref()))
                }
            }
        } else {
            self.stats.analysed += 1;
            self.scratch
                .insert(Entry::new(dialect, sql, mask, self.rules.as_deref()))
        };
        if entry.analysis.redacted.is_some() {
            self.stats.redacted += 1;
        }
        SqlView {
            shown: entry.shown.as_deref().unwrap_or(&entry.sql),
            text_json: &entry.text_json,
            analysis: &entry.analysis,
            analysis_json: &entry.analysis_json,
            rule_bits: &entry.rule_bits,
            mask_params: mask == Mask::Literals,
            dialect: entry.dialect,
        }
    }
}

/// Cache key: a hash of the dialect and text (collisions are resolved by comparing the text).
fn text_key(dialect: Dialect, sql: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write_u8(dialect as u8);
    h.write(sql.as_bytes());
    h.finish()
}
