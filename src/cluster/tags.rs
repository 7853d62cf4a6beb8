//! Which tag names this node's peers hold, so the node subscribes to a
//! tag's channel only while one of its peers has that tag.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How many local peers hold each tag name.
#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    holders: Mutex<HashMap<String, usize>>,
    /// Counts the changes of the set of names held.
    version: AtomicU64,
}

impl TagIndex {
    /// One more peer holds tag `name`.
    pub fn added(&self, name: &str) {
        let mut holders = self.holders();
        let count = holders.entry(name.to_owned()).or_default();
        *count += 1;
        if *count == 1 {
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// One peer less holds tag `name`.
    pub fn removed(&self, name: &str) {
        let mut holders = self.holders();
        if let Some(count) = holders.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                holders.remove(name);
                self.version.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Changes whenever a name starts or stops being held.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The names held now, and the version they are from.
    pub fn names(&self) -> (BTreeSet<String>, u64) {
        let holders = self.holders();
        (holders.keys().cloned().collect(), self.version())
    }

    fn holders(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_while_one_peer_has_it() {
        let index = TagIndex::default();
        let v0 = index.version();
        index.added("room");
        index.added("room");
        let v1 = index.version();
        assert_ne!(v0, v1);
        index.removed("room");
        assert_eq!(index.version(), v1, "still held by one peer");
        assert_eq!(index.names().0, BTreeSet::from(["room".to_owned()]));
        index.removed("room");
        index.removed("never");
        assert_ne!(index.version(), v1);
        assert!(index.names().0.is_empty());
    }
}
