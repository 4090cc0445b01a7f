//! Counts of records per grid and kind, for the administration console's
//! territory tree: read from the grids' record lists (`g/<grid>\0<doc>`,
//! whose value is the kind's index), without reading a record's meta or chunks.

use super::*;

impl SledStore {
    /// See [`Store::record_counts_by_grid`]: one prefix scan of the record
    /// list of each grid within `scope` that holds records.
    pub(super) fn counts_by_grid(
        &self,
        scope: &TerritoryPath,
    ) -> Result<Vec<(TerritoryPath, RecordKind, u64)>, StoreError> {
        let db = self.db()?;
        let mut out = Vec::new();
        for grid in self.grids_in(scope) {
            let mut counts = [0u64; RecordKind::ALL.len()];
            for kv in db.scan_prefix(scope_key(b"g/", &grid)) {
                let (_, v) = kv.map_err(engine)?;
                match v.first().and_then(|i| counts.get_mut(usize::from(*i))) {
                    Some(n) => *n += 1,
                    None => {
                        return Err(StoreError::Corrupt(format!("record list of {grid}: kind index {:?}", v.first())));
                    }
                }
            }
            out.extend(
                RecordKind::ALL.into_iter().zip(counts).filter(|(_, n)| *n > 0).map(|(k, n)| (grid.clone(), k, n)),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_shared::records::RecordSummary;

    fn commit(store: &SledStore, id: u8, grid: &str, kind: RecordKind) {
        let write = DocWrite {
            doc: DocId::from_bytes([id; 16]),
            grid: grid.parse().expect("grid"),
            summary: RecordSummary { kind, household: None, at: 1 },
            bytes: b"a saved document".to_vec(),
            heads: Vec::new(),
            device: DeviceId::from_bytes([1; 16]),
            changes: Vec::new(),
            photos: Vec::new(),
            row: None,
        };
        store.commit_doc(write, 1).expect("commit");
    }

    #[test]
    fn records_are_counted_per_grid_and_kind_within_the_scope_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        commit(&store, 1, "a/b/c/d/g1", RecordKind::VisitLog);
        commit(&store, 2, "a/b/c/d/g1", RecordKind::VisitLog);
        commit(&store, 3, "a/b/c/d/g1", RecordKind::Case);
        // A second commit of a record does not count it twice.
        commit(&store, 3, "a/b/c/d/g1", RecordKind::Case);
        commit(&store, 4, "a/b/c/d/g10", RecordKind::Household);
        commit(&store, 5, "a/b/c/e/g1", RecordKind::Household);
        let scope: TerritoryPath = "a/b/c/d".parse().expect("scope");
        let g = |s: &str| -> TerritoryPath { s.parse().expect("grid") };
        let want = vec![
            (g("a/b/c/d/g1"), RecordKind::VisitLog, 2),
            (g("a/b/c/d/g1"), RecordKind::Case, 1),
            (g("a/b/c/d/g10"), RecordKind::Household, 1),
        ];
        assert_eq!(store.record_counts_by_grid(&scope).expect("counts"), want, "grid order, then kind order");
        assert_eq!(store.record_counts_by_grid(&g("a/b/c/d/g1")).expect("counts").len(), 2, "one grid, not g10");
    }
}
