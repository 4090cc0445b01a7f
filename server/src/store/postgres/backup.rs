//! The PostgreSQL store's epochs (one per restore; a move from sled brings
//! the sled store's) and the mark of its last backup.

use super::*;

impl PgStore {
    pub(super) fn stored_epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        self.read(|q| {
            q.query("SELECT id, base_seq, at FROM store_epochs ORDER BY n", &[])?
                .into_iter()
                .map(|r| {
                    let id: Vec<u8> = r.get(0);
                    Ok(StoreEpoch {
                        id: id.try_into().map_err(|_| corrupt("a store epoch id is not 16 bytes"))?,
                        base_seq: unsigned(r.get(1))?,
                        at: r.get(2),
                    })
                })
                .collect()
        })
    }

    pub(super) fn last_backup_mark(&self) -> Result<Option<crate::backup::BackupMark>, StoreError> {
        self.read(|q| {
            let Some(r) = q.query_opt("SELECT at, head_seq FROM last_backup WHERE id = 1", &[])? else {
                return Ok(None);
            };
            Ok(Some(crate::backup::BackupMark { at: r.get(0), head_seq: unsigned(r.get(1))? }))
        })
    }

    pub(super) fn note_backup_mark(&self, mark: &crate::backup::BackupMark) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO last_backup (id, at, head_seq) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, head_seq = EXCLUDED.head_seq",
                &[&mark.at, &big(mark.head_seq)],
            )?;
            Ok(())
        })
    }
}
