//! Per-session prepared statement cache: what COM_STMT_EXECUTE needs to name and decode its
//! parameters (the prepared text, the parameter count from COM_STMT_PREPARE_OK, and the types of
//! the last execute that sent them: "new-params-bound-flag 0" reuses the previous types).
//! Bounded by `Limits::max_prepared_statements`; the least recently used entry is evicted.

// foldhash rather than the standard SipHash, as in the PostgreSQL statement cache: statement
// ids come from the wire, so the hasher stays seeded per process, but it is several times
// cheaper; every COM_STMT_EXECUTE looks its statement up.
use foldhash::HashMap;

use crate::messages::ParamType;

/// Long data sent for parameters, kept per statement as (param id, bytes); bounded.
pub const MAX_LONG_DATA_PARAMS: usize = 64;

/// One prepared statement.
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    /// Statement text, when the prepare was seen.
    pub sql: Option<std::sync::Arc<str>>,
    /// Parameter count from COM_STMT_PREPARE_OK (or inferred).
    pub params: u16,
    /// Types bound by the last execute that sent them.
    pub types: Option<Vec<ParamType>>,
    /// COM_STMT_SEND_LONG_DATA bytes per parameter since the last execute / reset.
    pub long_data: Vec<(u16, u64)>,
    pub(crate) used: u64,
}

impl Stmt {
    /// Bytes of long data sent for parameter `i`, if any.
    pub fn long_data_for(&self, i: usize) -> Option<u64> {
        self.long_data
            .iter()
            .find(|(p, _)| *p as usize == i)
            .map(|(_, b)| *b)
    }
}

/// The cache.
#[derive(Debug, Default)]
pub struct Cache {
    map: HashMap<u32, Stmt>,
    clock: u64,
    /// The least recently used statements, for eviction without a scan per prepare.
    oldest: dbtap_core::recency::OldestFirst<u32>,
    /// Approximate heap bytes of the entries, kept as they come and go (the flow table asks
    /// after every packet; a walk over up to `max_prepared_statements` entries each time would
    /// cost more than the packet).
    heap: usize,
}

/// Heap bytes one entry is counted for: its text, its bind types (one per parameter once an
/// execute sent them), its long-data list at its bound, and its table slot.
fn heap_of(s: &Stmt) -> usize {
    s.sql.as_ref().map_or(0, |t| t.len())
        + usize::from(s.params) * std::mem::size_of::<ParamType>()
        + MAX_LONG_DATA_PARAMS * std::mem::size_of::<(u16, u64)>()
        + std::mem::size_of::<(u32, Stmt)>()
}

impl Cache {
    /// Insert (or replace) `id`; returns true when another entry was evicted to make room.
    pub fn insert(&mut self, id: u32, mut stmt: Stmt, max: usize) -> bool {
        self.clock += 1;
        stmt.used = self.clock;
        let mut evicted = false;
        if !self.map.contains_key(&id) && self.map.len() >= max.max(1) {
            let map = &self.map;
            let old = self.oldest.pop_oldest(
                |k| map.get(k).map(|s| s.used),
                || map.iter().map(|(k, s)| (s.used, k)),
            );
            if let Some(old) = old {
                self.remove(old);
                evicted = true;
            }
        }
        self.heap += heap_of(&stmt);
        if let Some(old) = self.map.insert(id, stmt) {
            self.heap = self.heap.saturating_sub(heap_of(&old));
        }
        evicted
    }
    /// The statement, marked as recently used.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Stmt> {
        self.clock += 1;
        let clock = self.clock;
        let s = self.map.get_mut(&id)?;
        s.used = clock;
        Some(s)
    }
    /// Forget `id` (COM_STMT_CLOSE).
    pub fn remove(&mut self, id: u32) {
        if let Some(old) = self.map.remove(&id) {
            self.heap = self.heap.saturating_sub(heap_of(&old));
        }
    }
    /// Forget everything (COM_RESET_CONNECTION, COM_CHANGE_USER).
    pub fn clear(&mut self) {
        self.map.clear();
        self.oldest.clear();
        self.heap = 0;
    }
    /// Approximate heap bytes held (see [`Cache::heap`]'s field).
    pub fn heap(&self) -> usize {
        self.heap
    }
    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_is_evicted() {
        let mut c = Cache::default();
        assert!(!c.insert(1, Stmt::default(), 2));
        assert!(!c.insert(2, Stmt::default(), 2));
        c.get_mut(1);
        assert!(c.insert(3, Stmt::default(), 2));
        assert!(c.get_mut(2).is_none());
        assert!(c.get_mut(1).is_some());
        assert_eq!(c.len(), 2);
        c.remove(1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn heap_follows_the_entries() {
        let stmt = |sql: &str, params| Stmt {
            sql: Some(sql.into()),
            params,
            ..Stmt::default()
        };
        let mut c = Cache::default();
        c.insert(1, stmt("SELECT ?", 1), 8);
        let one = c.heap();
        assert!(one > "SELECT ?".len() + std::mem::size_of::<ParamType>());
        // Replaced under the same id: counted once, for the new text.
        c.insert(1, stmt("SELECT ?, ?", 2), 8);
        assert_eq!(
            c.heap(),
            one + ", ?".len() + std::mem::size_of::<ParamType>()
        );
        c.insert(2, stmt("SELECT 1", 0), 8);
        c.remove(1);
        c.remove(7);
        assert!(c.heap() > 0);
        // Eviction gives the evicted entry's bytes back.
        let mut small = Cache::default();
        small.insert(1, stmt("SELECT 1", 0), 1);
        let before = small.heap();
        assert!(small.insert(2, stmt("SELECT 2", 0), 1));
        assert_eq!(small.heap(), before);
        c.clear();
        assert_eq!(c.heap(), 0);
    }
}
