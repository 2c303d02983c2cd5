//! Per-session statement and portal bookkeeping.
//!
//! - Prepared statements ("Parse … the name of the destination prepared statement (an empty
//!   string selects the unnamed prepared statement)"): what a later Bind needs to name and type
//!   its parameters. The unnamed statement is replaced by every Parse; named ones live until a
//!   Close (or the end of the session). Bounded by `Limits::max_prepared_statements`; the least
//!   recently used named statement is evicted (and counted by the caller).
//! - Portals: which operation a later Execute continues (`PortalSuspended` then Execute again).
//!   Bounded the same way.
//!
//! Eviction uses `dbtap_core::recency::OldestFirst`: an application that names a new statement
//! per query and never closes them (a full cache) costs about one name copy per eviction, not a
//! walk of the whole cache.

// foldhash rather than the standard SipHash: statement names come from the wire, so the
// hasher stays seeded per process (no fixed-seed collisions to craft), but is several times
// cheaper; every Bind looks its statement up.
use foldhash::HashMap;

use dbtap_core::recency::OldestFirst;

/// Longest statement or portal name kept as a key (PostgreSQL truncates identifiers to
/// NAMEDATALEN − 1 = 63 bytes; longer names on the wire are only compared on this prefix).
pub const MAX_NAME_LEN: usize = 256;

/// One prepared statement.
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    /// Statement text (decoded, possibly cut at `max_statement_len`).
    pub sql: Option<std::sync::Arc<str>>,
    /// The text was cut at a limit.
    pub cut: bool,
    /// Parameter type OIDs declared by Parse (0 = unspecified), bounded by `max_params`.
    /// Shared with the deferred values of the Binds that use it.
    pub oids: std::sync::Arc<[u32]>,
    used: u64,
}

impl Stmt {
    /// A statement as Parse defined it.
    pub fn new(sql: Option<std::sync::Arc<str>>, cut: bool, oids: Vec<u32>) -> Stmt {
        Stmt {
            sql,
            cut,
            oids: oids.into(),
            used: 0,
        }
    }

    fn heap(&self) -> usize {
        self.sql.as_ref().map_or(0, |s| s.len()) + self.oids.len() * 4
    }
}

fn key(name: &[u8]) -> Box<[u8]> {
    name.get(..MAX_NAME_LEN.min(name.len()))
        .unwrap_or_default()
        .into()
}

/// The statement cache.
#[derive(Debug, Default)]
pub struct Statements {
    named: HashMap<Box<[u8]>, Stmt>,
    unnamed: Option<Stmt>,
    clock: u64,
    heap: usize,
    oldest: OldestFirst<Box<[u8]>>,
}

impl Statements {
    /// Define statement `name`; returns true when another was evicted to make room.
    pub fn insert(&mut self, name: &[u8], mut stmt: Stmt, max: usize) -> bool {
        self.clock += 1;
        stmt.used = self.clock;
        self.heap += stmt.heap();
        if name.is_empty() {
            if let Some(old) = self.unnamed.replace(stmt) {
                self.heap = self.heap.saturating_sub(old.heap());
            }
            return false;
        }
        let k = key(name);
        let mut evicted = false;
        if !self.named.contains_key(&k) && self.named.len() >= max.max(1) {
            let named = &self.named;
            let old = self.oldest.pop_oldest(
                |k| named.get(k).map(|s| s.used),
                || named.iter().map(|(k, s)| (s.used, k)),
            );
            if let Some(old) = old {
                self.remove(&old);
                evicted = true;
            }
        }
        self.heap += k.len();
        if let Some(old) = self.named.insert(k, stmt) {
            self.heap = self
                .heap
                .saturating_sub(old.heap() + name.len().min(MAX_NAME_LEN));
        }
        evicted
    }

    /// Statement `name`, marked as recently used.
    pub fn get(&mut self, name: &[u8]) -> Option<&Stmt> {
        self.clock += 1;
        let clock = self.clock;
        let s = if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named
                .get_mut(name.get(..MAX_NAME_LEN.min(name.len()))?)
        }?;
        s.used = clock;
        Some(s)
    }

    /// Forget statement `name` (Close, or a Parse that failed).
    pub fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            if let Some(old) = self.unnamed.take() {
                self.heap = self.heap.saturating_sub(old.heap());
            }
            return;
        }
        let k = name.get(..MAX_NAME_LEN.min(name.len())).unwrap_or_default();
        if let Some(old) = self.named.remove(k) {
            self.heap = self.heap.saturating_sub(old.heap() + k.len());
        }
    }

    /// Number of statements held (the unnamed one included).
    pub fn len(&self) -> usize {
        self.named.len() + usize::from(self.unnamed.is_some())
    }

    /// True when no statement is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held (approximate), for the flow table's memory cap.
    pub fn heap(&self) -> usize {
        self.heap + self.named.capacity() * 64
    }
}

/// Portal name → the operation that Bind created for it.
#[derive(Debug, Default)]
pub struct Portals {
    /// Name → (operation, stamp of the Bind that named it).
    named: HashMap<Box<[u8]>, (u64, u64)>,
    unnamed: Option<u64>,
    clock: u64,
    oldest: OldestFirst<Box<[u8]>>,
}

impl Portals {
    /// Portal `name` now belongs to operation `op`.
    pub fn bind(&mut self, name: &[u8], op: u64, max: usize) {
        if name.is_empty() {
            self.unnamed = Some(op);
            return;
        }
        self.clock += 1;
        let k = key(name);
        if !self.named.contains_key(&k) && self.named.len() >= max.max(1) {
            let named = &self.named;
            let old = self.oldest.pop_oldest(
                |k| named.get(k).map(|v| v.1),
                || named.iter().map(|(k, v)| (v.1, k)),
            );
            if let Some(old) = old {
                self.named.remove(&old);
            }
        }
        self.named.insert(k, (op, self.clock));
    }

    /// The operation of portal `name`.
    pub fn get(&self, name: &[u8]) -> Option<u64> {
        if name.is_empty() {
            return self.unnamed;
        }
        self.named
            .get(name.get(..MAX_NAME_LEN.min(name.len()))?)
            .map(|v| v.0)
    }

    /// Forget portal `name` (Close).
    pub fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else if let Some(k) = name.get(..MAX_NAME_LEN.min(name.len())) {
            self.named.remove(k);
        }
    }

    /// Forget every portal (the transaction ended: "portals are dropped at end of
    /// transaction").
    pub fn clear(&mut self) {
        self.named.clear();
        self.unnamed = None;
        self.oldest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str) -> Stmt {
        Stmt {
            sql: Some(sql.into()),
            ..Default::default()
        }
    }

    #[test]
    fn lru_eviction_and_unnamed() {
        let mut c = Statements::default();
        assert!(!c.insert(b"a", stmt("1"), 2));
        assert!(!c.insert(b"b", stmt("2"), 2));
        assert!(c.get(b"a").is_some()); // a is now newer than b
        assert!(c.insert(b"c", stmt("3"), 2)); // evicts b
        assert!(c.get(b"b").is_none());
        assert_eq!(c.get(b"a").unwrap().sql.as_deref(), Some("1"));
        // The unnamed statement does not count against the bound and is replaced.
        assert!(!c.insert(b"", stmt("u1"), 2));
        assert!(!c.insert(b"", stmt("u2"), 2));
        assert_eq!(c.get(b"").unwrap().sql.as_deref(), Some("u2"));
        assert_eq!(c.len(), 3);
        c.remove(b"a");
        c.remove(b"");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn evictions_match_a_full_scan_for_the_least_recently_used() {
        // A reference cache that scans for the oldest stamp, as the parser did before; the same
        // pseudo-random mix of defines, uses and closes over 300 names, 40 kept.
        let max = 40;
        let mut c = Statements::default();
        let mut reference: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        let mut clock = 0u64;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = format!("s{}", x % 300).into_bytes();
            clock += 1;
            match (x >> 32) % 4 {
                0 | 1 => {
                    let mut expect_evicted = None;
                    if !reference.contains_key(&name) && reference.len() >= max {
                        let old = reference.iter().min_by_key(|e| e.1).map(|e| e.0.clone());
                        reference.remove(old.as_ref().unwrap());
                        expect_evicted = old;
                    }
                    reference.insert(name.clone(), clock);
                    assert_eq!(c.insert(&name, stmt("q"), max), expect_evicted.is_some());
                    if let Some(old) = expect_evicted {
                        assert!(c.get(&old).is_none(), "step {step}");
                        clock += 1; // the get above ticked the cache's clock
                    }
                }
                2 => {
                    let hit = reference.get_mut(&name).map(|t| *t = clock).is_some();
                    assert_eq!(c.get(&name).is_some(), hit, "step {step}");
                }
                _ => {
                    reference.remove(&name);
                    c.remove(&name);
                }
            }
            assert_eq!(c.len(), reference.len(), "step {step}");
        }
    }

    #[test]
    fn portals() {
        let mut p = Portals::default();
        p.bind(b"", 1, 2);
        p.bind(b"c1", 2, 2);
        p.bind(b"c2", 3, 2);
        p.bind(b"c3", 4, 2); // evicts c1
        assert_eq!(p.get(b""), Some(1));
        assert_eq!(p.get(b"c1"), None);
        assert_eq!(p.get(b"c3"), Some(4));
        p.clear();
        assert_eq!(p.get(b""), None);
    }
}
