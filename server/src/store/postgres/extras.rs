//! The PostgreSQL store's smaller tables: the audit log (its own counter row,
//! as the feed's), photos and unfinished uploads, the household key index
//! and import runs, secrets and devices.

use super::*;

/// How a photo's type is kept: a code of our own, independent of any enum's order.
pub(super) fn type_code(mime: PhotoType) -> i16 {
    match mime {
        PhotoType::Jpeg => 1,
        PhotoType::Webp => 2,
    }
}

fn type_of(code: i16) -> Result<PhotoType, StoreError> {
    match code {
        1 => Ok(PhotoType::Jpeg),
        2 => Ok(PhotoType::Webp),
        other => Err(corrupt(format!("photo type {other}"))),
    }
}

/// How many bytes chunks (offset, length) in offset order hold from 0 without a gap.
fn contiguous(chunks: &[(i64, i64)]) -> i64 {
    let mut end = 0;
    for (offset, len) in chunks {
        if *offset != end {
            break;
        }
        end += len;
    }
    end
}

impl PgStore {
    pub(super) fn audit_append(
        &self,
        territory: Option<&TerritoryPath>,
        actor: &str,
        action: &str,
        detail: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        let territory = territory.map(TerritoryPath::as_str);
        self.write(IsolationLevel::ReadCommitted, |q| {
            let seq: i64 =
                q.query_one("UPDATE audit_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq", &[])?.get(0);
            q.execute(
                "INSERT INTO audit (seq, at, actor, action, detail, territory) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&seq, &at, &actor, &action, &detail, &territory],
            )?;
            Ok(unsigned(seq)?)
        })
    }

    pub(super) fn audit_entries(&self, after: u64, limit_to: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|q| {
            q.query(
                "SELECT seq, at, actor, action, detail, territory FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&big(after), &limit(limit_to)],
            )?
            .into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: unsigned(r.get(0))?,
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    detail: r.get(4),
                    territory: r
                        .get::<_, Option<String>>(5)
                        .map(|t| {
                            TerritoryPath::parse(&t).map_err(|e| StoreError::Corrupt(format!("audit territory: {e}")))
                        })
                        .transpose()?,
                })
            })
            .collect()
        })
    }

    pub(super) fn photo_blob(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError> {
        self.read(|q| {
            let row = q.query_opt("SELECT mime, bytes FROM photos WHERE hash = $1", &[&hash.as_str()])?;
            Ok(row.map(|r| Ok::<_, StoreError>((type_of(r.get(0))?, r.get(1)))).transpose()?)
        })
    }

    pub(super) fn photo_stored(&self, hash: &PhotoHash) -> Result<bool, StoreError> {
        self.read(|q| Ok(q.query_opt("SELECT 1 FROM photos WHERE hash = $1", &[&hash.as_str()])?.is_some()))
    }

    pub(super) fn referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError> {
        self.read(|q| {
            q.query(
                "SELECT doc, grid, size, mime FROM photo_refs WHERE hash = $1 ORDER BY doc, ord",
                &[&hash.as_str()],
            )?
            .into_iter()
            .map(|r| {
                Ok(PhotoReferrer {
                    doc: DocId(r.get(0)),
                    grid: path(r.get(1))?,
                    size: unsigned(r.get(2))?,
                    mime: type_of(r.get(3))?,
                })
            })
            .collect()
        })
    }

    /// The (offset, length) of an upload's chunks, in offset order.
    fn chunks<C: ::postgres::GenericClient>(q: &mut Q<'_, C>, hash: &PhotoHash) -> Result<Vec<(i64, i64)>, Fail> {
        Ok(q.query(
            "SELECT at_offset, length(bytes)::BIGINT FROM photo_uploads WHERE hash = $1 ORDER BY at_offset",
            &[&hash.as_str()],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    pub(super) fn upload_held(&self, hash: &PhotoHash) -> Result<u64, StoreError> {
        self.read(|q| Ok(unsigned(contiguous(&Self::chunks(q, hash)?))?))
    }

    pub(super) fn upload_append(
        &self,
        hash: &PhotoHash,
        offset: u64,
        bytes: &[u8],
    ) -> Result<UploadAppend, StoreError> {
        // Serializable: two servers appending to one upload at once cannot
        // both find the same end; the loser is run again and sees the winner's chunk.
        self.write(IsolationLevel::Serializable, |q| {
            let received = unsigned(contiguous(&Self::chunks(q, hash)?))?;
            if offset != received {
                return Ok(UploadAppend::WrongOffset { received });
            }
            if bytes.is_empty() {
                return Ok(UploadAppend::Appended { received });
            }
            // Chunks past a gap are stale: dropped with this append.
            q.execute(
                "DELETE FROM photo_uploads WHERE hash = $1 AND at_offset >= $2",
                &[&hash.as_str(), &big(offset)],
            )?;
            q.execute(
                "INSERT INTO photo_uploads (hash, at_offset, bytes) VALUES ($1, $2, $3)",
                &[&hash.as_str(), &big(offset), &bytes],
            )?;
            Ok(UploadAppend::Appended { received: received + bytes.len() as u64 })
        })
    }

    pub(super) fn upload_assembled(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError> {
        self.read(|q| {
            let mut out = Vec::new();
            for r in q.query(
                "SELECT at_offset, bytes FROM photo_uploads WHERE hash = $1 ORDER BY at_offset",
                &[&hash.as_str()],
            )? {
                let (offset, bytes): (i64, Vec<u8>) = (r.get(0), r.get(1));
                if offset != big(out.len() as u64) {
                    break;
                }
                out.extend_from_slice(&bytes);
            }
            Ok(out)
        })
    }

    pub(super) fn upload_finish(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO photos (hash, mime, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (hash) DO UPDATE SET mime = EXCLUDED.mime, bytes = EXCLUDED.bytes",
                &[&hash.as_str(), &type_code(mime), &bytes],
            )?;
            q.execute("DELETE FROM photo_uploads WHERE hash = $1", &[&hash.as_str()])?;
            Ok(())
        })
    }

    pub(super) fn upload_discard(&self, hash: &PhotoHash) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute("DELETE FROM photo_uploads WHERE hash = $1", &[&hash.as_str()])?;
            Ok(())
        })
    }

    pub(super) fn household_key_entry(&self, key: &[u8; 32]) -> Result<Option<HouseholdKeyEntry>, StoreError> {
        self.read(|q| {
            let Some(r) =
                q.query_opt("SELECT doc, digest FROM household_keys WHERE hash_key = $1", &[&key.as_slice()])?
            else {
                return Ok(None);
            };
            let digest: Option<Vec<u8>> = r.get(1);
            let digest = digest.map(|d| d.try_into().map_err(|_| corrupt("household key digest"))).transpose()?;
            Ok(Some(HouseholdKeyEntry { doc: DocId(r.get(0)), digest }))
        })
    }

    pub(super) fn import_run_put(&self, id: &str, created_at: i64, run: &[u8]) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO import_runs (id, created_at, run) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET created_at = EXCLUDED.created_at, run = EXCLUDED.run",
                &[&id, &created_at, &run],
            )?;
            Ok(())
        })
    }

    pub(super) fn import_run_get(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|q| Ok(q.query_opt("SELECT run FROM import_runs WHERE id = $1", &[&id])?.map(|r| r.get(0))))
    }

    pub(super) fn import_runs_newest(&self, limit_to: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(|q| {
            Ok(q.query("SELECT run FROM import_runs ORDER BY created_at DESC, id DESC LIMIT $1", &[&limit(limit_to)])?
                .into_iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    pub(super) fn import_secret_put(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO import_secrets (id, bytes) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes",
                &[&id, &bytes],
            )?;
            Ok(())
        })
    }

    pub(super) fn import_secret_take(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // One statement: of two servers taking it at once, one gets it.
        self.write(IsolationLevel::ReadCommitted, |q| {
            Ok(q.query_opt("DELETE FROM import_secrets WHERE id = $1 RETURNING bytes", &[&id])?.map(|r| r.get(0)))
        })
    }

    pub(super) fn import_device_get(&self, person: PersonId) -> Result<Option<DeviceId>, StoreError> {
        self.read(|q| {
            Ok(q.query_opt("SELECT device FROM import_devices WHERE person = $1", &[&person.0])?
                .map(|r| DeviceId(r.get(0))))
        })
    }

    pub(super) fn import_device_set(&self, person: PersonId, device: DeviceId) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO import_devices (person, device) VALUES ($1, $2) \
                 ON CONFLICT (person) DO UPDATE SET device = EXCLUDED.device",
                &[&person.0, &device.0],
            )?;
            Ok(())
        })
    }
}
