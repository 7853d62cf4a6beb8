//! A peer's tags. In cluster mode each name a peer holds counts in the
//! node's [`TagIndex`], which decides the node's tag subscriptions; the
//! index changes under the peer's lock, so a tag set as the peer leaves
//! is never counted after its departure took its names out.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::cluster::TagIndex;

/// The tags of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerTags(Mutex<Tags>);

#[derive(Debug, Default)]
struct Tags {
    values: BTreeMap<String, String>,
    /// The peer left: its names are out of the index for good.
    released: bool,
}

impl PeerTags {
    /// Sets tag `name` to `value`; with `overwrite` false an existing tag is
    /// kept and `false` returned. A new name counts in `index`.
    pub fn set(&self, name: &str, value: &str, overwrite: bool, index: Option<&TagIndex>) -> bool {
        let mut tags = self.lock();
        if !overwrite && tags.values.contains_key(name) {
            return false;
        }
        let new = tags
            .values
            .insert(name.to_owned(), value.to_owned())
            .is_none();
        if new && !tags.released {
            if let Some(index) = index {
                index.added(name);
            }
        }
        true
    }

    /// Removes tag `name`; whether it was there.
    pub fn remove(&self, name: &str, index: Option<&TagIndex>) -> bool {
        let mut tags = self.lock();
        let removed = tags.values.remove(name).is_some();
        if removed && !tags.released {
            if let Some(index) = index {
                index.removed(name);
            }
        }
        removed
    }

    /// The value of tag `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.lock().values.get(name).cloned()
    }

    /// Whether tag `name` is set (to `value`, if given).
    pub fn has(&self, name: &str, value: Option<&str>) -> bool {
        match (self.lock().values.get(name), value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        }
    }

    /// The peer left: its names leave `index`, and later changes are not
    /// counted there.
    pub fn release(&self, index: &TagIndex) {
        let mut tags = self.lock();
        if !std::mem::replace(&mut tags.released, true) {
            for name in tags.values.keys() {
                index.removed(name);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tags> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_in_the_index_until_the_peer_leaves() {
        let index = TagIndex::default();
        let (a, b) = (PeerTags::default(), PeerTags::default());
        assert!(a.set("room", "1", true, Some(&index)));
        assert!(!a.set("room", "2", false, Some(&index)), "kept");
        assert!(
            a.set("room", "2", true, Some(&index)),
            "replaced, counted once"
        );
        assert!(b.set("room", "2", true, Some(&index)));
        assert!(a.has("room", Some("2")) && !a.has("room", Some("1")));
        a.release(&index);
        assert!(a.set("late", "x", true, Some(&index)), "set, not counted");
        assert_eq!(index.names().0.into_iter().collect::<Vec<_>>(), ["room"]);
        assert!(b.remove("room", Some(&index)));
        assert!(index.names().0.is_empty());
        a.release(&index);
        assert!(index.names().0.is_empty(), "released once");
    }
}
