//! The session's prepared handles (sp_prepare, sp_prepexec, sp_cursorprepare…): handle →
//! statement text and the parameter names its `@params` declares, for the positional values of a
//! later sp_execute.
//!
//! Clients with a statement cache (the JDBC and ODBC drivers) keep hundreds or thousands of
//! handles open on one connection, so every operation here is O(log n) or better, and the heap
//! size the flow table asks for after each packet is a running sum rather than a walk over the
//! handles (the walk took 71% of a replay of a session holding 4,000 handles).

use std::collections::BTreeMap;

// foldhash rather than the standard SipHash, as in the PostgreSQL statement cache: handles come
// from the wire, so the hasher stays seeded per process, but it is several times cheaper; every
// sp_execute looks its handle up.
use foldhash::HashMap;
use std::sync::Arc;

/// A prepared statement.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: Arc<str>,
    /// Declared parameter names, in order (shared with each execute that uses them).
    pub names: Arc<[String]>,
    /// When it was remembered (its key in `Handles::order`).
    age: u64,
}

/// Handles of one session, bounded; the oldest is forgotten first when full.
#[derive(Debug, Default)]
pub struct Handles {
    by_handle: HashMap<i64, Prepared>,
    /// Remembering order → handle.
    order: BTreeMap<u64, i64>,
    clock: u64,
    /// Approximate heap bytes held, kept as entries come and go.
    heap: usize,
}

/// Heap bytes an entry holds (approximate: texts, names, and the table slots).
fn heap_of(p: &Prepared) -> usize {
    const SLOT: usize = 64;
    const PER_NAME: usize = std::mem::size_of::<String>();
    p.sql.len()
        + p.names
            .iter()
            .map(|n| n.capacity() + PER_NAME)
            .sum::<usize>()
        + SLOT
}

impl Handles {
    /// Remember `handle` (replacing an earlier statement under it). Returns true when the oldest
    /// handle was forgotten to stay within `max`.
    pub fn remember(
        &mut self,
        handle: i64,
        sql: Arc<str>,
        names: Arc<[String]>,
        max: usize,
    ) -> bool {
        self.forget(handle);
        let mut evicted = false;
        if self.by_handle.len() >= max.max(1) {
            if let Some((_, oldest)) = self.order.pop_first() {
                if let Some(old) = self.by_handle.remove(&oldest) {
                    self.heap = self.heap.saturating_sub(heap_of(&old));
                }
                evicted = true;
            }
        }
        self.clock += 1;
        let p = Prepared {
            sql,
            names,
            age: self.clock,
        };
        self.heap += heap_of(&p);
        self.order.insert(p.age, handle);
        self.by_handle.insert(handle, p);
        evicted
    }

    /// Forget `handle` (sp_unprepare); nothing happens for an unknown one.
    pub fn forget(&mut self, handle: i64) {
        if let Some(old) = self.by_handle.remove(&handle) {
            self.order.remove(&old.age);
            self.heap = self.heap.saturating_sub(heap_of(&old));
        }
    }

    pub fn get(&self, handle: i64) -> Option<&Prepared> {
        self.by_handle.get(&handle)
    }

    pub fn len(&self) -> usize {
        self.by_handle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn heap(&self) -> usize {
        self.heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Arc<[String]> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_oldest_handle_goes_first_and_the_heap_follows() {
        let mut h = Handles::default();
        assert!(!h.remember(1, "SELECT 1".into(), names(&["@a"]), 2));
        assert!(!h.remember(2, "SELECT 2".into(), names(&[]), 2));
        let two = h.heap();
        // Re-preparing handle 1 makes it the newest: handle 2 is now the oldest.
        assert!(!h.remember(1, "SELECT 11".into(), names(&["@a", "@b"]), 2));
        assert!(h.remember(3, "SELECT 3".into(), names(&[]), 2));
        assert!(h.get(2).is_none());
        assert_eq!(h.get(1).map(|p| &*p.sql), Some("SELECT 11"));
        assert_eq!(h.get(1).map(|p| p.names.len()), Some(2));
        assert_eq!(h.len(), 2);
        h.forget(1);
        h.forget(3);
        h.forget(99);
        assert!(h.is_empty());
        assert_eq!(h.heap(), 0);
        assert!(two > 0);
    }
}
