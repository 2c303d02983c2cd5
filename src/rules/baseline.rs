//! Learnt baselines kept from run to run (`--baseline PATH`).
//!
//! A baseline rule learns, for its learning period, which values (e.g. statement fingerprints)
//! each key (e.g. user and client program) uses, then alerts on values never seen. Learning a
//! week of traffic only to forget it at the end of the run would make the rule useless to
//! someone replaying one capture file per day, or to a sensor that restarts: the learnt sets and
//! the time learning started are saved to a JSON file at the end of a run and loaded at the
//! start of the next.
//!
//! The file names each rule by id, with the fields its key and value were made of: a rule whose
//! definition changed since (other fields, or gone) does not take the old values — they would
//! never match — and the run says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// `format` of a baseline file.
pub const FORMAT: &str = "dbtap-baseline";
/// `version` of the layout below.
pub const VERSION: u32 = 1;
/// Largest baseline file read (the values themselves are bounded by
/// [`super::correlate::MAX_BASELINE_VALUES`]).
pub const MAX_BASELINE_FILE_LEN: u64 = 1 << 30;

/// The learnt state of every baseline rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineFile {
    pub format: String,
    pub version: u32,
    /// By rule id.
    pub rules: BTreeMap<String, RuleBaseline>,
}

/// One rule's learnt state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleBaseline {
    /// The rule's `key` fields and `value` field when the values were learnt.
    pub key_fields: Vec<String>,
    pub value_field: String,
    /// Capture time learning started, nanoseconds since the Unix epoch.
    pub learning_started_ns: u64,
    /// Values seen, by key (the key's field values joined as in alerts).
    pub known: BTreeMap<String, BTreeSet<String>>,
}

impl BaselineFile {
    pub fn new() -> Self {
        BaselineFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            rules: BTreeMap::new(),
        }
    }

    /// Values in all.
    pub fn values(&self) -> usize {
        self.rules
            .values()
            .flat_map(|r| r.known.values())
            .map(BTreeSet::len)
            .sum()
    }

    /// Read `path`: `Ok(None)` when it does not exist yet (the first run), an error naming the
    /// file when it cannot be used (never silently replaced by an empty baseline).
    pub fn load(path: &Path) -> Result<Option<BaselineFile>, String> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if meta.len() > MAX_BASELINE_FILE_LEN {
            return Err(format!(
                "{}: larger than {MAX_BASELINE_FILE_LEN} bytes",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: BaselineFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a dbtap baseline file (line {}, column {}: {e})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(format!(
                "{}: format {:?} version {}, expected {FORMAT:?} version {VERSION}",
                path.display(),
                file.format,
                file.version
            ));
        }
        Ok(Some(file))
    }

    /// Write `path` whole or not at all (a temporary file renamed over it), so that a crash
    /// while saving never leaves half a baseline.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let text = serde_json::to_string(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}
