//! Shared names and the registries of weak entries that outlive config
//! versions (connection pools, host health, interned names).

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

/// Whether a registry of `len` entries, `purged_at` after its last purge,
/// is due another: once it has doubled. Purging on every new entry made
/// filling it O(n²).
fn purge_due(len: usize, purged_at: usize) -> bool {
    len >= 2 * purged_at + 1024
}

/// Drops the entries of a registry whose value is gone, when due.
pub(crate) fn purge_dead<K, V>(map: &mut HashMap<K, Weak<V>>, purged_at: &mut usize) {
    if purge_due(map.len(), *purged_at) {
        map.retain(|_, w| w.strong_count() > 0);
        *purged_at = map.len();
    }
}

/// One shared copy of each resource name, namespace and locality: a
/// cluster's name is otherwise held by the raw config, the compiled
/// cluster and the EDS subscription, each its own String. Taken when a
/// config compiles, never per request.
#[derive(Default)]
pub struct Interner {
    set: Mutex<(HashSet<Arc<str>>, usize)>,
}

impl Interner {
    pub fn get(&self, s: &str) -> Arc<str> {
        let mut guard = self.set.lock();
        let (set, purged_at) = &mut *guard;
        if let Some(a) = set.get(s) {
            return a.clone();
        }
        // Names nothing else holds any more are dropped as the set doubles.
        if purge_due(set.len(), *purged_at) {
            set.retain(|a| Arc::strong_count(a) > 1);
            *purged_at = set.len();
        }
        let a: Arc<str> = s.into();
        set.insert(a.clone());
        a
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interner")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_purge_dead_entries_once_the_map_has_doubled() {
        let live = Arc::new(());
        let mut map: HashMap<u32, std::sync::Weak<()>> = (0..1500)
            .map(|i| (i, if i == 0 { Arc::downgrade(&live) } else { Arc::downgrade(&Arc::new(())) }))
            .collect();
        let mut purged_at = 1000;
        purge_dead(&mut map, &mut purged_at);
        assert_eq!(map.len(), 1500, "not doubled since the last purge (2 × 1000 + 1024)");
        purged_at = 0;
        purge_dead(&mut map, &mut purged_at);
        assert_eq!((map.len(), purged_at), (1, 1), "only the live entry stays");
    }
}
