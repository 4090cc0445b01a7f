//! Records and the change feed in the PostgreSQL store. `records` holds one
//! row per record (grid and kind fixed at creation, last commit, summary,
//! flattened row, and a saved base where a commit gave a whole document);
//! `feed` one row per commit with its heads and changes, so a record's
//! document is its base and the changes of its feed rows after it.

use super::*;

/// What one write becomes, computed before its transaction.
struct Prepared {
    doc: uuid::Uuid,
    grid: String,
    kind: i16,
    summary: Vec<u8>,
    row: Option<Vec<u8>>,
    base: Option<Vec<u8>>,
    heads: Vec<Vec<u8>>,
    changes: Vec<Vec<u8>>,
    device: uuid::Uuid,
}

/// A photo index entry: (hash, doc, grid, claims as (size, type)).
type PhotoEntry = (String, uuid::Uuid, String, Vec<(i64, i16)>);

pub(super) fn kind_index(kind: RecordKind) -> i16 {
    RecordKind::ALL.iter().position(|k| *k == kind).and_then(|i| i16::try_from(i).ok()).unwrap_or(i16::MAX)
}

fn kind_of(i: i16) -> Result<RecordKind, StoreError> {
    usize::try_from(i)
        .ok()
        .and_then(|i| RecordKind::ALL.get(i).copied())
        .ok_or_else(|| corrupt(format!("record kind {i}")))
}

fn heads_of(heads: Vec<Vec<u8>>) -> Result<Vec<ChangeHash>, StoreError> {
    heads.into_iter().map(|h| h.try_into().map(ChangeHash).map_err(|_| corrupt("a head is not 32 bytes"))).collect()
}

/// At most this many records per group commit, beyond its first commit
/// (which may be larger: an import's batch): it bounds how long one
/// transaction holds the feed counter.
pub(super) const GROUP_WRITES: usize = 256;

/// One caller's commit, prepared, waiting for its group.
pub(super) struct CommitJob {
    batch: Batch,
    at: i64,
}

/// What one commit writes, computed before any transaction.
struct Batch {
    photos: Vec<PhotoEntry>,
    keys: Vec<HouseholdKey>,
    records: Vec<Prepared>,
}

impl Batch {
    fn of(writes: Vec<(DocWrite, Vec<HouseholdKey>)>) -> Result<Batch, StoreError> {
        let mut photos: Vec<PhotoEntry> = Vec::new();
        let mut keys: Vec<HouseholdKey> = Vec::new();
        let mut records = Vec::with_capacity(writes.len());
        for (mut w, ks) in writes {
            let mut by_hash: std::collections::BTreeMap<String, Vec<(i64, i16)>> = Default::default();
            for p in &w.photos {
                let claims = by_hash.entry(p.sha256.as_str().to_string()).or_default();
                let claim = (big(p.size), extras::type_code(p.mime));
                if !claims.contains(&claim) {
                    claims.push(claim);
                }
            }
            photos.extend(by_hash.into_iter().map(|(h, c)| (h, w.doc.0, w.grid.as_str().to_string(), c)));
            keys.extend(ks);
            let base = (w.changes.is_empty() && !w.bytes.is_empty()).then(|| std::mem::take(&mut w.bytes));
            records.push(Prepared {
                doc: w.doc.0,
                grid: w.grid.as_str().to_string(),
                kind: kind_index(w.summary.kind),
                summary: enc(&w.summary)?,
                row: w.row,
                base,
                heads: w.heads.iter().map(|h| h.0.to_vec()).collect(),
                changes: w.changes,
                device: w.device.0,
            });
        }
        Ok(Batch { photos, keys, records })
    }
}

impl PgStore {
    /// Commits many documents in one transaction (see the module's feed
    /// technique), gathered with other callers' concurrent commits into one
    /// transaction where they arrive while another is running ([`super::group`]).
    /// Returns the feed position of the last of `writes`.
    pub(super) fn commit_records(
        &self,
        writes: Vec<(DocWrite, Vec<HouseholdKey>)>,
        at: i64,
    ) -> Result<u64, StoreError> {
        if writes.is_empty() {
            return self.head_seq();
        }
        let batch = Batch::of(writes)?;
        let size = batch.records.len();
        off_runtime(|| self.commits.submit(CommitJob { batch, at }, size, |jobs| self.commit_group(jobs)))
    }

    /// How many transactions have committed records and how many commits they held.
    pub fn group_counts(&self) -> GroupCounts {
        self.commits.counts()
    }

    /// Runs a group's commits as one transaction, each commit's result its
    /// last feed position. Should the transaction fail before COMMIT (nothing
    /// applied), each commit runs again alone, so that one commit's failure
    /// is its own; a failed COMMIT, whose outcome is unknown, fails them all
    /// (the phones' retries settle it, as for a single commit).
    fn commit_group(&self, jobs: Vec<CommitJob>) -> Vec<Result<u64, StoreError>> {
        let at = jobs.iter().map(|j| j.at).max().unwrap_or(0);
        let batches: Vec<&Batch> = jobs.iter().map(|j| &j.batch).collect();
        match self.commit_batches(&batches, at) {
            Ok(last) => {
                let total: usize = batches.iter().map(|b| b.records.len()).sum();
                let mut upto = 0;
                batches
                    .iter()
                    .map(|b| {
                        upto += b.records.len();
                        Ok(unsigned(last)? - (total - upto) as u64)
                    })
                    .collect()
            }
            Err(f) if f.at_commit || jobs.len() == 1 => jobs.iter().map(|_| Err(f.error.clone())).collect(),
            Err(f) => {
                tracing::debug!(error = %f.error, commits = jobs.len(), "a group commit failed; its commits run alone");
                jobs.iter()
                    .map(|j| self.commit_batches(&[&j.batch], j.at).map_err(|f| f.error).and_then(unsigned))
                    .collect()
            }
        }
    }

    /// Writes `batches` in one transaction; returns the last feed position taken.
    fn commit_batches(&self, batches: &[&Batch], at: i64) -> Result<i64, WriteFailure> {
        // Row locks taken before the counter in one order, so that two
        // commits never wait on each other in a circle. A later entry for the
        // same (hash, doc) wins, as a later commit would.
        let all_photos = batches.iter().flat_map(|b| b.photos.iter());
        let mut last_photo: HashMap<(&str, uuid::Uuid), usize> = HashMap::new();
        for (i, (h, d, _, _)) in all_photos.clone().enumerate() {
            last_photo.insert((h.as_str(), *d), i);
        }
        let mut photos: Vec<&PhotoEntry> = all_photos
            .enumerate()
            .filter(|(i, (h, d, _, _))| last_photo.get(&(h.as_str(), *d)) == Some(i))
            .map(|(_, p)| p)
            .collect();
        photos.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut keys: Vec<&HouseholdKey> = batches.iter().flat_map(|b| b.keys.iter()).collect();
        keys.sort_by_key(|k| k.key);
        let records: Vec<&Prepared> = batches.iter().flat_map(|b| b.records.iter()).collect();
        let n = big(records.len() as u64);
        // Called within `commit_records`' `off_runtime`.
        self.write_telling(IsolationLevel::ReadCommitted, |q| {
            for (hash, doc, grid, claims) in &photos {
                q.execute("DELETE FROM photo_refs WHERE hash = $1 AND doc = $2", &[hash, doc])?;
                for (ord, (size, mime)) in claims.iter().enumerate() {
                    let ord = i32::try_from(ord).unwrap_or(i32::MAX);
                    q.execute(
                        "INSERT INTO photo_refs (hash, doc, ord, grid, size, mime) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[hash, doc, &ord, grid, size, mime],
                    )?;
                }
            }
            for k in &keys {
                let (hk, doc, digest) =
                    (k.key.as_slice(), k.entry.doc.0, k.entry.digest.as_ref().map(|d| d.as_slice()));
                if k.replace {
                    q.execute(
                        "INSERT INTO household_keys (hash_key, doc, digest) VALUES ($1, $2, $3) \
                         ON CONFLICT (hash_key) DO UPDATE SET doc = EXCLUDED.doc, digest = EXCLUDED.digest",
                        &[&hk, &doc, &digest],
                    )?;
                } else {
                    q.execute(
                        "INSERT INTO household_keys (hash_key, doc, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&hk, &doc, &digest],
                    )?;
                }
            }
            // From here to COMMIT this transaction holds the counter row: commits are serialised.
            let counter = q.query_one(
                "UPDATE feed_counter SET seq = seq + $1, at = GREATEST(at, $2) WHERE id = 1 RETURNING seq, at",
                &[&n, &at],
            )?;
            let (last, at): (i64, i64) = (counter.get(0), counter.get(1));
            for (i, p) in records.iter().enumerate() {
                let seq = last - n + 1 + big(i as u64);
                let base_seq: i64 = if p.base.is_some() { seq } else { 0 };
                // The grid a record was created in stays its grid (and its feed's).
                let grid: String = q
                    .query_one(
                        "INSERT INTO records (id, grid, kind, seq, summary, flat_row, base, base_seq) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
                         seq = EXCLUDED.seq, summary = EXCLUDED.summary, flat_row = EXCLUDED.flat_row, \
                         base = COALESCE(EXCLUDED.base, records.base), \
                         base_seq = CASE WHEN EXCLUDED.base IS NULL THEN records.base_seq ELSE EXCLUDED.base_seq END \
                         RETURNING grid",
                        &[&p.doc, &p.grid, &p.kind, &seq, &p.summary, &p.row, &p.base, &base_seq],
                    )?
                    .get(0);
                q.execute(
                    "INSERT INTO feed (seq, at, doc, grid, device, heads, changes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&seq, &at, &p.doc, &grid, &p.device, &p.heads, &p.changes],
                )?;
            }
            Ok(last)
        })
    }

    pub(super) fn feed_entries(
        &self,
        scope: &TerritoryPath,
        after: u64,
        limit_to: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let (s, len, prefix) = scope_params(scope);
        // One statement: it sees a prefix of the feed (see the module's doc).
        self.read(|q| {
            let rows = if scope.is_grid() {
                // A phone's own grid, the common case: one range of the (grid, seq) index.
                q.query(
                    "SELECT seq, at, doc, grid, device, changes FROM feed \
                     WHERE grid = $2 AND seq > $1 ORDER BY seq LIMIT $3",
                    &[&big(after), &s, &limit(limit_to)],
                )?
            } else {
                q.query(
                    "SELECT seq, at, doc, grid, device, changes FROM feed \
                     WHERE seq > $1 AND (grid = $2 OR substr(grid, 1, $3) = $4) ORDER BY seq LIMIT $5",
                    &[&big(after), &s, &len, &prefix, &limit(limit_to)],
                )?
            };
            rows.into_iter()
                .map(|r| {
                    Ok(FeedEntry {
                        seq: unsigned(r.get(0))?,
                        at: r.get(1),
                        doc: DocId(r.get(2)),
                        grid: path(r.get(3))?,
                        device: DeviceId(r.get(4)),
                        changes: r.get(5),
                    })
                })
                .collect()
        })
    }

    /// Rows of (id, grid, kind, seq, base, changes) ordered by id then commit
    /// into documents: a record's base, then its changes after it.
    fn assemble(rows: Vec<::postgres::Row>) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        let mut out: Vec<(DocId, StoredDoc)> = Vec::new();
        for r in rows {
            let id = DocId(r.get(0));
            if out.last().is_none_or(|(last, _)| *last != id) {
                let base: Option<Vec<u8>> = r.get(4);
                out.push((
                    id,
                    StoredDoc {
                        grid: path(r.get(1))?,
                        kind: kind_of(r.get(2))?,
                        seq: unsigned(r.get(3))?,
                        bytes: base.unwrap_or_default(),
                    },
                ));
            }
            let changes: Option<Vec<Vec<u8>>> = r.get(5);
            if let Some((_, doc)) = out.last_mut() {
                for c in changes.unwrap_or_default() {
                    doc.bytes.extend_from_slice(&c);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.read(|q| {
            let rows = q.query(
                "SELECT r.id, r.grid, r.kind, r.seq, r.base, f.changes FROM records r \
                 LEFT JOIN feed f ON f.doc = r.id AND f.seq > r.base_seq AND f.seq <= r.seq \
                 WHERE r.id = $1 ORDER BY f.seq",
                &[&id.0],
            )?;
            Ok(Self::assemble(rows)?.pop().map(|(_, d)| d))
        })
    }

    pub(super) fn docs_listed(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit_to: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        let (s, len, prefix) = scope_params(scope);
        let n = limit(limit_to);
        macro_rules! docs {
            ($inner:literal) => {
                concat!(
                    "SELECT r.id, r.grid, r.kind, r.seq, r.base, f.changes FROM \
                     (SELECT id, grid, kind, seq, base, base_seq FROM records WHERE ",
                    $inner,
                    ") r LEFT JOIN feed f ON f.doc = r.id AND f.seq > r.base_seq AND f.seq <= r.seq \
                     ORDER BY r.id, f.seq"
                )
            };
        }
        self.read(|q| {
            // A grid (a phone's own, the common case) is one range of the (grid, id) index.
            let rows = match (scope.is_grid(), after) {
                (true, None) => q.query(docs!("grid = $1 ORDER BY id LIMIT $2"), &[&s, &n])?,
                (true, Some(a)) => q.query(docs!("grid = $1 AND id > $2 ORDER BY id LIMIT $3"), &[&s, &a.0, &n])?,
                (false, None) => q.query(
                    docs!("(grid = $1 OR substr(grid, 1, $2) = $3) ORDER BY id LIMIT $4"),
                    &[&s, &len, &prefix, &n],
                )?,
                (false, Some(a)) => q.query(
                    docs!("id > $4 AND (grid = $1 OR substr(grid, 1, $2) = $3) ORDER BY id LIMIT $5"),
                    &[&s, &len, &prefix, &a.0, &n],
                )?,
            };
            Ok(Self::assemble(rows)?)
        })
    }

    pub(super) fn listings(
        &self,
        scope: &TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        limit_to: usize,
    ) -> Result<Vec<RecordListing>, StoreError> {
        let (s, len, prefix) = scope_params(scope);
        let (k, n) = (kind_index(kind), limit(limit_to));
        self.read(|q| {
            let rows = match (scope.is_grid(), after) {
                (true, None) => q.query(
                    "SELECT id, seq, flat_row FROM records WHERE kind = $1 AND grid = $2 ORDER BY id LIMIT $3",
                    &[&k, &s, &n],
                )?,
                (true, Some(a)) => q.query(
                    "SELECT id, seq, flat_row FROM records WHERE kind = $1 AND grid = $2 AND id > $3 ORDER BY id LIMIT $4",
                    &[&k, &s, &a.0, &n],
                )?,
                (false, None) => q.query(
                    "SELECT id, seq, flat_row FROM records WHERE kind = $1 \
                     AND (grid = $2 OR substr(grid, 1, $3) = $4) ORDER BY id LIMIT $5",
                    &[&k, &s, &len, &prefix, &n],
                )?,
                (false, Some(a)) => q.query(
                    "SELECT id, seq, flat_row FROM records WHERE kind = $1 AND id > $5 \
                     AND (grid = $2 OR substr(grid, 1, $3) = $4) ORDER BY id LIMIT $6",
                    &[&k, &s, &len, &prefix, &a.0, &n],
                )?,
            };
            rows            .into_iter()
            .map(|r| Ok(RecordListing { id: DocId(r.get(0)), seq: unsigned(r.get(1))?, row: r.get(2) }))
            .collect()
        })
    }

    pub(super) fn counts_by_grid(
        &self,
        scope: &TerritoryPath,
    ) -> Result<Vec<(TerritoryPath, RecordKind, u64)>, StoreError> {
        let (s, len, prefix) = scope_params(scope);
        let mut out = self.read(|q| {
            q.query(
                "SELECT grid, kind, COUNT(*) FROM records WHERE grid = $1 OR substr(grid, 1, $2) = $3 GROUP BY grid, kind",
                &[&s, &len, &prefix],
            )?
            .into_iter()
            .map(|r| Ok((path(r.get(0))?, kind_of(r.get(1))?, unsigned(r.get(2))?)))
            .collect::<Result<Vec<_>, Fail>>()
        })?;
        // Grid order (bytewise), then the kinds' order.
        out.sort_by(|a, b| (&a.0, kind_index(a.1)).cmp(&(&b.0, kind_index(b.1))));
        Ok(out)
    }

    pub(super) fn counts_by_kind(&self) -> Result<Vec<(RecordKind, u64)>, StoreError> {
        let held = self.read(|q| {
            q.query("SELECT kind, COUNT(*) FROM records GROUP BY kind", &[])?
                .into_iter()
                .map(|r| Ok((kind_of(r.get(0))?, unsigned(r.get(1))?)))
                .collect::<Result<HashMap<_, _>, Fail>>()
        })?;
        Ok(RecordKind::ALL.into_iter().map(|k| (k, held.get(&k).copied().unwrap_or(0))).collect())
    }

    pub(super) fn heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        self.read(|q| {
            let row = q.query_opt(
                "SELECT heads FROM feed WHERE doc = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1",
                &[&id.0, &big(seq)],
            )?;
            Ok(row.map(|r| heads_of(r.get(0))).transpose()?)
        })
    }

    pub(super) fn rowless(&self, after: Option<DocId>, limit_to: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        let after = after.map(|d| d.0);
        self.read(|q| {
            q.query(
                "SELECT id, seq FROM records WHERE flat_row IS NULL AND ($1::UUID IS NULL OR id > $1) ORDER BY id LIMIT $2",
                &[&after, &limit(limit_to)],
            )?
            .into_iter()
            .map(|r| Ok((DocId(r.get(0)), unsigned(r.get(1))?)))
            .collect()
        })
    }
}
