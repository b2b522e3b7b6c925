//! The small state: kept in memory for fast reads, written through to
//! [`Table::Rows`] as it changes.
//!
//! Nodes, tenants, workloads, buckets and the like grow with the cluster, not
//! with the data stored, so they are held in memory (every reader of the
//! control plane looks at them) and loaded from the rows at start. Each field
//! remembers what changed since the last [`flush`](Cell::flush):
//! a [`Cell`] is one row (rewritten whole when changed), a [`Tracked`] map one
//! row per entry (only changed entries are rewritten). Every mutation goes
//! through them, so nothing changed can be missed; marking is conservative
//! (a `get_mut` marks its entry even if nothing is written).

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap, BTreeSet};
use std::ops::{Bound, Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kv::{prefix_end, Kv, KvError, Table};

fn encode<T: Serialize>(what: &str, v: &T) -> Vec<u8> {
    // bincode cannot fail on the state's types (no maps with non-string keys
    // that serde rejects, no unsized sequences); a failure is a bug.
    bincode::serialize(v).unwrap_or_else(|e| panic!("cannot encode {what}: {e}"))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, KvError> {
    bincode::deserialize(bytes).map_err(|e| KvError(format!("row {what} is unreadable: {e}")))
}

/// One row: a value rewritten whole when it changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell<T> {
    value: T,
    dirty: bool,
}

impl<T> Deref for Cell<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Cell<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.value
    }
}

impl<T: Serialize + DeserializeOwned + Default> Cell<T> {
    /// The row `name` of `kv` (the default when absent).
    pub(crate) fn load(kv: &dyn Kv, name: &str) -> Result<Self, KvError> {
        let value = match kv.get(Table::Rows, name.as_bytes()) {
            Some(b) => decode(name, &b)?,
            None => T::default(),
        };
        Ok(Self {
            value,
            dirty: false,
        })
    }

    /// Writes the row if it changed.
    pub(crate) fn flush(&mut self, kv: &mut dyn Kv, name: &str) {
        if std::mem::take(&mut self.dirty) {
            kv.put(Table::Rows, name.as_bytes(), &encode(name, &self.value));
        }
    }
}

/// A map written one row per entry (`name \0 key`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tracked<K: Ord, V> {
    map: BTreeMap<K, V>,
    dirty: BTreeSet<K>,
}

impl<K: Ord, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<K: Ord, V> Deref for Tracked<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> Tracked<K, V> {
    /// The entry of `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        let v = self.map.get_mut(key)?;
        self.dirty.insert(key.to_owned());
        Some(v)
    }

    /// Sets `key`, returning the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.dirty.insert(key.clone());
        self.map.insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        let v = self.map.remove(key)?;
        self.dirty.insert(key.to_owned());
        Some(v)
    }

    /// The entry of `key`, to insert or change.
    pub fn entry(&mut self, key: K) -> btree_map::Entry<'_, K, V> {
        self.dirty.insert(key.clone());
        self.map.entry(key)
    }

    /// Keeps only the entries `f` accepts.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        let dirty = &mut self.dirty;
        self.map.retain(|k, v| {
            let keep = f(k, v);
            dirty.insert(k.clone());
            keep
        });
    }

    /// Every value, to change (marks every entry).
    pub fn values_mut(&mut self) -> btree_map::ValuesMut<'_, K, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.values_mut()
    }

    /// Every entry, to change (marks every entry).
    pub fn iter_mut(&mut self) -> btree_map::IterMut<'_, K, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }
}

fn row_prefix(name: &str) -> Vec<u8> {
    let mut p = name.as_bytes().to_vec();
    p.push(0);
    p
}

impl<K, V> Tracked<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Every row `name \0 *` of `kv`.
    pub(crate) fn load(kv: &dyn Kv, name: &str) -> Result<Self, KvError> {
        let prefix = row_prefix(name);
        let end = prefix_end(&prefix);
        let mut map = BTreeMap::new();
        let mut failed = None;
        kv.scan(Table::Rows, Bound::Included(&prefix), &mut |k, v| {
            if end.as_deref().is_some_and(|e| k >= e) {
                return false;
            }
            match (decode(name, &k[prefix.len()..]), decode(name, v)) {
                (Ok(k), Ok(v)) => {
                    map.insert(k, v);
                    true
                }
                (Err(e), _) | (_, Err(e)) => {
                    failed = Some(e);
                    false
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(Self {
                map,
                dirty: BTreeSet::new(),
            }),
        }
    }

    /// Writes the changed entries (deleting removed ones).
    pub(crate) fn flush(&mut self, kv: &mut dyn Kv, name: &str) {
        for k in std::mem::take(&mut self.dirty) {
            let mut key = row_prefix(name);
            key.extend_from_slice(&encode(name, &k));
            match self.map.get(&k) {
                Some(v) => kv.put(Table::Rows, &key, &encode(name, v)),
                None => kv.delete(Table::Rows, &key),
            }
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for Tracked<K, V>
where
    K: Clone,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map: BTreeMap<K, V> = iter.into_iter().collect();
        let dirty = map.keys().cloned().collect();
        Self { map, dirty }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    #[test]
    fn only_changed_entries_are_written_and_they_read_back() {
        let mut kv = MemKv::default();
        let mut m: Tracked<String, u32> = Tracked::default();
        m.insert("a".into(), 1);
        m.insert("b".into(), 2);
        m.flush(&mut kv, "m");
        let before = crate::kv::dump(&kv);
        m.flush(&mut kv, "m");
        assert_eq!(
            crate::kv::dump(&kv),
            before,
            "nothing changed, nothing written"
        );
        *m.get_mut("a").expect("a") = 10;
        m.remove("b");
        *m.entry("c".into()).or_default() += 3;
        m.retain(|k, _| k != "c");
        m.flush(&mut kv, "m");
        // A neighbour whose name extends ours is another field.
        let mut other: Tracked<String, u32> = Tracked::default();
        other.insert("z".into(), 9);
        other.flush(&mut kv, "mm");
        let back: Tracked<String, u32> = Tracked::load(&kv, "m").expect("load");
        assert_eq!(back.len(), 1);
        assert_eq!(back.get("a"), Some(&10));
        let mut c: Cell<Option<u64>> = Cell::load(&kv, "cell").expect("load");
        assert_eq!(*c, None);
        *c = Some(4);
        c.flush(&mut kv, "cell");
        assert_eq!(
            *Cell::<Option<u64>>::load(&kv, "cell").expect("load"),
            Some(4)
        );
    }

    #[test]
    fn an_unreadable_row_is_an_error_not_a_default() {
        let mut kv = MemKv::default();
        kv.put(Table::Rows, b"cell", b"\xff");
        assert!(Cell::<String>::load(&kv, "cell").is_err());
    }
}
