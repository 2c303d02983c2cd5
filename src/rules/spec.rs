//! The rule pack file format (TOML), as written by people. See `rules/README.md`.

use serde::Deserialize;
use toml::Spanned;

/// One pack file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSpec {
    /// Pack-wide settings.
    #[serde(default)]
    pub pack: PackSettings,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSpec>>,
}

/// `[pack]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSettings {
    /// Lists (`[pack.lists]`) that conditions name with `in_list = "name"`.
    #[serde(default)]
    pub lists: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: Spanned<String>,
    pub title: String,
    pub severity: Spanned<String>,
    pub category: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The condition a record must meet.
    pub when: Spanned<CondSpec>,
    /// Count matching records per group within a window; alert at `count`.
    pub threshold: Option<Spanned<ThresholdSpec>>,
    /// Sum a field of matching records per group within a window; alert at `at_least`.
    pub accumulate: Option<Spanned<AccumulateSpec>>,
    /// After a learning period, alert on a value never seen for its key.
    pub baseline: Option<Spanned<BaselineSpec>>,
    /// At most one alert per group per this many seconds (default 0: every match alerts).
    #[serde(default)]
    pub suppress_secs: u64,
    /// Fields whose values form the suppression group (default: client ip and user).
    pub suppress_by: Option<Vec<Spanned<String>>>,
    /// Records that must and must not raise the rule.
    pub examples: Option<Spanned<ExamplesSpec>>,
}

/// `[rule.threshold]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Alert when this many matching records (or distinct values) fall within `window_secs`.
    pub count: u64,
    pub window_secs: u64,
    /// Fields whose values form a group (e.g. `["client_ip"]`).
    #[serde(default)]
    pub group_by: Vec<Spanned<String>>,
    /// Count distinct values of this field instead of records (password spraying: `user`).
    pub distinct: Option<Spanned<String>>,
}

/// `[rule.accumulate]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccumulateSpec {
    /// The numeric field summed (e.g. `rows`).
    pub field: Spanned<String>,
    /// Alert when the sum within the window reaches this; what is over it carries on.
    pub at_least: u64,
    pub window_secs: u64,
    #[serde(default)]
    pub group_by: Vec<Spanned<String>>,
}

/// `[rule.baseline]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// Packet-time seconds of learning, from the first matching record.
    pub learn_secs: u64,
    /// Fields whose values form the key (e.g. `["user", "client_program"]`).
    pub key: Vec<Spanned<String>>,
    /// The field whose new values fire (e.g. `fingerprint`).
    pub value: Spanned<String>,
}

/// `[rule.examples]`: records as tables of field values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesSpec {
    #[serde(default, rename = "match")]
    pub matching: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub no_match: Vec<Spanned<toml::Table>>,
}

/// A condition: exactly one of `all`, `any`, `not`, or a `field` test.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CondSpec {
    pub all: Option<Vec<Spanned<CondSpec>>>,
    pub any: Option<Vec<Spanned<CondSpec>>>,
    pub not: Option<Box<Spanned<CondSpec>>>,
    pub field: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    #[serde(rename = "in")]
    pub in_values: Option<Spanned<Vec<toml::Value>>>,
    /// A list of the pack's `[pack.lists]`.
    pub in_list: Option<Spanned<String>>,
    /// A list of the pack's `[pack.lists]`, each entry a glob.
    pub glob_list: Option<Spanned<String>>,
    pub glob: Option<Spanned<OneOrMany>>,
    pub regex: Option<Spanned<OneOrMany>>,
    pub gt: Option<f64>,
    pub ge: Option<f64>,
    pub lt: Option<f64>,
    pub le: Option<f64>,
    pub cidr: Option<Spanned<OneOrMany>>,
    pub exists: Option<bool>,
    /// Time of day window `["22:00", "06:00"]` (wraps midnight), in the configured time zone.
    pub time: Option<Spanned<Vec<String>>>,
    /// Days of the week: `["sat", "sun"]`.
    pub days: Option<Spanned<Vec<String>>>,
}

/// One string or a list of them.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}
