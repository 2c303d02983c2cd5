//! Least-recently-used eviction for the parsers' bounded caches (prepared statements, cursors).
//!
//! Each cache entry keeps the stamp of its latest use, from a clock of the cache's own, so that
//! a use costs nothing more. Finding the least recently used entry by scanning the cache cost a
//! walk over every entry for each new statement once the cache was full (up to
//! `max_prepared_statements`, for an application that never closes its statements).
//! [`OldestFirst`] scans once for the [`CANDIDATES`] oldest entries and hands them out in order,
//! skipping any used or removed since; it scans again only when they are spent. The answer is
//! the scan's: an entry left out of the candidates was newer than all of them, and stamps only
//! grow. A scan borrows the keys and copies only the candidates' (names, for PostgreSQL), so
//! an eviction costs about one key copy, not a walk of the cache.

use std::collections::VecDeque;

/// Oldest entries taken per scan of the cache.
pub const CANDIDATES: usize = 64;

/// The oldest entries of a cache as of its latest scan, oldest first.
#[derive(Debug, Clone)]
pub struct OldestFirst<K> {
    candidates: VecDeque<(u64, K)>,
}

impl<K> Default for OldestFirst<K> {
    fn default() -> Self {
        OldestFirst {
            candidates: VecDeque::new(),
        }
    }
}

impl<K: Clone> OldestFirst<K> {
    /// The least recently used key still cached; the cache then removes its entry. `stamp_of`
    /// gives an entry's current stamp (`None` when the key is no longer cached); `all` lists
    /// every entry as (stamp, key), for a new scan.
    pub fn pop_oldest<'a, I>(
        &mut self,
        stamp_of: impl Fn(&K) -> Option<u64>,
        all: impl FnOnce() -> I,
    ) -> Option<K>
    where
        I: IntoIterator<Item = (u64, &'a K)>,
        K: 'a,
    {
        let mut all = Some(all);
        loop {
            while let Some((stamp, key)) = self.candidates.pop_front() {
                if stamp_of(&key) == Some(stamp) {
                    return Some(key);
                }
            }
            let mut scan: Vec<(u64, &K)> = all.take()?().into_iter().collect();
            if scan.len() > CANDIDATES {
                scan.select_nth_unstable_by_key(CANDIDATES - 1, |e| e.0);
                scan.truncate(CANDIDATES);
            }
            scan.sort_unstable_by_key(|e| e.0);
            self.candidates
                .extend(scan.into_iter().map(|(stamp, k)| (stamp, k.clone())));
        }
    }

    /// Forget the candidates (the cache was emptied).
    pub fn clear(&mut self) {
        self.candidates.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A cache of stamps by key, evicting like the parsers' caches do.
    #[derive(Default)]
    struct Lru {
        stamps: HashMap<u32, u64>,
        clock: u64,
        oldest: OldestFirst<u32>,
    }

    impl Lru {
        fn use_key(&mut self, k: u32) {
            self.clock += 1;
            self.stamps.insert(k, self.clock);
        }
        fn evict(&mut self) -> Option<u32> {
            let stamps = &self.stamps;
            let k = self.oldest.pop_oldest(
                |k| stamps.get(k).copied(),
                || stamps.iter().map(|(k, s)| (*s, k)),
            )?;
            self.stamps.remove(&k);
            Some(k)
        }
    }

    #[test]
    fn evictions_follow_the_uses_as_a_full_scan_would() {
        let mut c = Lru::default();
        for k in 0..200 {
            c.use_key(k);
        }
        // The first scan takes 0..64; 5 is used again and 7 removed meanwhile.
        assert_eq!(c.evict(), Some(0));
        c.use_key(5);
        c.stamps.remove(&7);
        let next: Vec<u32> = (0..8).filter_map(|_| c.evict()).collect();
        assert_eq!(next, [1, 2, 3, 4, 6, 8, 9, 10]);
        // Past the candidates, a new scan goes on in order, 5 (used again) last of all.
        let rest: Vec<u32> = std::iter::from_fn(|| c.evict()).collect();
        let mut expect: Vec<u32> = (11..200).collect();
        expect.push(5);
        assert_eq!(rest, expect);
        assert_eq!(c.evict(), None);
    }
}
