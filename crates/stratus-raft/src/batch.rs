//! The writes of the batch being applied, kept in memory in key order until
//! the state database commits them.
//!
//! Applying one object put reads and rewrites the same chunk-index row
//! several times (committed with its pack, then referenced), and inserts an
//! unreferenced-chunk row that the same batch deletes again. Buffered here,
//! each row reaches the B-tree once, in key order, when the batch commits;
//! rows written and removed inside one batch never reach it at all; and
//! queries during the batch read the last commit through the shared read
//! view instead of opening tables in the write transaction. Readers see the
//! batch's rows over the committed ones ([`Batch::get`], [`Batch::scan`]).

use std::collections::BTreeMap;
use std::ops::Bound;

use stratus_state::Table;

/// Per table: key → new value (`None`: deleted).
type Rows = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What a batch wrote to one table, as [`Batch::drain`] hands it over.
pub(crate) struct TableWrites {
    pub table: Table,
    /// Every committed row of the table goes first.
    pub cleared: bool,
    pub rows: Rows,
}

/// Bytes a buffered row costs beyond its key and value (map node, lengths).
const ROW_OVERHEAD: usize = 64;

/// The pending writes of one batch.
#[derive(Default)]
pub(crate) struct Batch {
    tables: [Rows; Table::ALL.len()],
    cleared: [bool; Table::ALL.len()],
    bytes: usize,
}

impl Batch {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && !self.cleared.iter().any(|c| *c)
    }

    /// Roughly how much memory the pending rows take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn set(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        let cost = key.len() + value.map_or(0, <[u8]>::len) + ROW_OVERHEAD;
        let rows = &mut self.tables[table as usize];
        match rows.get_mut(key) {
            Some(slot) => {
                self.bytes -= slot.as_ref().map_or(0, Vec::len);
                self.bytes += value.map_or(0, <[u8]>::len);
                *slot = value.map(<[u8]>::to_vec);
            }
            None => {
                rows.insert(key.to_vec(), value.map(<[u8]>::to_vec));
                self.bytes += cost;
            }
        }
    }

    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.set(table, key, Some(value));
    }

    pub fn delete(&mut self, table: Table, key: &[u8]) {
        self.set(table, key, None);
    }

    /// Drops every row of `table`, committed or pending.
    pub fn clear(&mut self, table: Table) {
        let rows = std::mem::take(&mut self.tables[table as usize]);
        for (k, v) in rows {
            self.bytes -= k.len() + v.map_or(0, |v| v.len()) + ROW_OVERHEAD;
        }
        self.cleared[table as usize] = true;
    }

    /// What the batch says of `key`: `Some(Some(v))` written, `Some(None)`
    /// gone (deleted, or its table cleared), `None` ask the committed state.
    pub fn get(&self, table: Table, key: &[u8]) -> Option<Option<&[u8]>> {
        match self.tables[table as usize].get(key) {
            Some(v) => Some(v.as_deref()),
            None if self.cleared[table as usize] => Some(None),
            None => None,
        }
    }

    /// Visits the rows of `table` from `from` on, in key order, the batch's
    /// over those `base` visits (the committed rows, skipped if the table
    /// was cleared), until `f` returns false.
    pub fn scan<E>(
        &self,
        table: Table,
        from: Bound<&[u8]>,
        base: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), E>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), E> {
        let mut pending = self.tables[table as usize]
            .range::<[u8], _>((from, Bound::Unbounded))
            .peekable();
        let mut stopped = false;
        if !self.cleared[table as usize] {
            base(&mut |k, v| {
                // Pending rows before this one, then this one or its
                // replacement.
                while let Some((pk, pv)) = pending.peek() {
                    match pk.as_slice().cmp(k) {
                        std::cmp::Ordering::Less => {
                            if let Some(pv) = pv {
                                if !f(pk, pv) {
                                    stopped = true;
                                    return false;
                                }
                            }
                            pending.next();
                        }
                        std::cmp::Ordering::Equal => {
                            let go_on = pv.as_deref().is_none_or(|pv| f(k, pv));
                            pending.next();
                            stopped = !go_on;
                            return go_on;
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                let go_on = f(k, v);
                stopped = !go_on;
                go_on
            })?;
        }
        if !stopped {
            for (k, v) in pending {
                if let Some(v) = v {
                    if !f(k, v) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes every pending write, table by table; the batch is empty after.
    pub fn drain(&mut self) -> Vec<TableWrites> {
        let out = Table::ALL
            .into_iter()
            .filter_map(|table| {
                let rows = std::mem::take(&mut self.tables[table as usize]);
                let cleared = std::mem::take(&mut self.cleared[table as usize]);
                (cleared || !rows.is_empty()).then_some(TableWrites {
                    table,
                    cleared,
                    rows,
                })
            })
            .collect();
        self.bytes = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use stratus_state::{Kv, MemKv};

    /// A committed state (`MemKv`) with a batch over it, read like the
    /// state database reads it.
    fn scan_over(
        committed: &MemKv,
        batch: &Batch,
        table: Table,
        from: Bound<&[u8]>,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let r: Result<(), ()> = batch.scan(
            table,
            from,
            |visit| {
                committed.scan(table, from, visit);
                Ok(())
            },
            &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                out.len() < limit
            },
        );
        assert!(r.is_ok());
        out
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..24, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            3 => (0u8..24).prop_map(Op::Delete),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Reads through a batch over committed rows give what writing the
        /// same operations straight into the rows gives; so does draining
        /// the batch into them.
        #[test]
        fn a_batch_over_committed_rows_reads_as_writing_through(
            committed in prop::collection::vec((0u8..24, any::<u8>()), 0..24),
            ops in prop::collection::vec(op(), 0..40),
            from in 0u8..26,
            limit in 1usize..30,
        ) {
            let t = Table::Chunks;
            let mut base = MemKv::default();
            for (k, v) in &committed {
                base.put(t, &[*k], &[*v]);
            }
            let mut through = base.clone();
            let mut batch = Batch::default();
            for op in &ops {
                match op {
                    Op::Put(k, v) => {
                        through.put(t, &[*k], &[*v]);
                        batch.put(t, &[*k], &[*v]);
                    }
                    Op::Delete(k) => {
                        through.delete(t, &[*k]);
                        batch.delete(t, &[*k]);
                    }
                    Op::Clear => {
                        through.clear(t);
                        batch.clear(t);
                    }
                }
            }
            for k in 0u8..24 {
                let via_batch = match batch.get(t, &[k]) {
                    Some(v) => v.map(<[u8]>::to_vec),
                    None => base.get(t, &[k]),
                };
                prop_assert_eq!(via_batch, through.get(t, &[k]));
            }
            let key = [from];
            for bound in [Bound::Included(&key[..]), Bound::Excluded(&key[..]), Bound::Unbounded] {
                let mut want = Vec::new();
                through.scan(t, bound, &mut |k, v| {
                    want.push((k.to_vec(), v.to_vec()));
                    want.len() < limit
                });
                prop_assert_eq!(scan_over(&base, &batch, t, bound, limit), want);
            }
            // Draining writes the same rows.
            let mut drained = base.clone();
            for w in batch.drain() {
                if w.cleared {
                    drained.clear(w.table);
                }
                for (k, v) in w.rows {
                    match v {
                        Some(v) => drained.put(w.table, &k, &v),
                        None => drained.delete(w.table, &k),
                    }
                }
            }
            prop_assert_eq!(stratus_state::kv::dump(&drained), stratus_state::kv::dump(&through));
            prop_assert!(batch.is_empty());
            prop_assert_eq!(batch.bytes(), 0);
        }
    }

    #[test]
    fn memory_is_counted_as_rows_come_and_go() {
        let mut b = Batch::default();
        b.put(Table::Rows, b"k", &[0; 100]);
        let one = b.bytes();
        assert!(one >= 101);
        b.put(Table::Rows, b"k", &[0; 10]);
        assert_eq!(b.bytes(), one - 90);
        b.delete(Table::Rows, b"k");
        assert_eq!(b.bytes(), one - 100);
        b.put(Table::Versions, b"v", b"x");
        b.clear(Table::Rows);
        assert_eq!(b.bytes(), 1 + 1 + ROW_OVERHEAD);
        assert!(!b.is_empty());
        b.drain();
        assert!(b.is_empty());
    }
}
