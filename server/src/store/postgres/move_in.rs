//! Moving a (stopped) sled store into an empty PostgreSQL database:
//! `gridsync-server --data DIR --store postgres://… move-to`.
//!
//! Everything the sled store holds is copied in one transaction, so the move
//! is atomic: it lands whole or not at all, and a move that fails or is
//! interrupted leaves the database empty, ready to be run again. Every feed
//! entry keeps its position, time, device and changes, and the feed counter
//! and store epochs come along, so a phone's sync cursor names the same place
//! in the database as in the sled store: it goes on with the next entry,
//! neither missing nor receiving one twice. Devices keep their token hashes,
//! so no phone signs in again. The sled store is only read.
//!
//! Records are read page by page and feed entries in pages of positions, so
//! memory stays flat; the trees the store's trait cannot list (photos,
//! unfinished uploads, the photo and household key indexes, import runs and
//! secrets) are found by walking the sled store's backup stream, whose values
//! are read again through the trait wherever it can read them.

use super::*;
use crate::backup::BackupSink;
use crate::store::SledStore;

/// Records (and feed entries) read from the sled store at a time.
const PAGE: usize = 256;

/// What a move copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// Territory nodes.
    pub territories: u64,
    /// People (with their password hashes).
    pub people: u64,
    /// Devices (with their token hashes).
    pub devices: u64,
    /// Records.
    pub records: u64,
    /// Feed entries, at their positions.
    pub feed_entries: u64,
    /// The feed's head position (the counter the next commit goes on from).
    pub head_seq: u64,
    /// Audit log entries.
    pub audit_entries: u64,
    /// Stored photos.
    pub photos: u64,
    /// Unfinished photo uploads.
    pub uploads: u64,
    /// Household keys.
    pub household_keys: u64,
    /// Import runs.
    pub import_runs: u64,
    /// Store epochs (one per restore the sled store went through).
    pub epochs: u64,
}

/// Why a move did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The database already holds a store.
    #[error(
        "the PostgreSQL database is not empty ({0}): move only into an empty database (nothing was changed; drop and create it, or name another)"
    )]
    NotEmpty(String),
    /// Reading the sled store or writing the database failed; nothing was kept.
    #[error("{0} (nothing was kept in the PostgreSQL database)")]
    Store(#[from] StoreError),
    /// The copy does not hold what the sled store holds; nothing was kept.
    #[error("the copy does not match the sled store: {0} (nothing was kept in the PostgreSQL database)")]
    Mismatch(String),
}

impl From<::postgres::Error> for MoveError {
    fn from(e: ::postgres::Error) -> Self {
        MoveError::Store(pg(e))
    }
}

type Tx<'q, 'c> = Q<'q, ::postgres::Transaction<'c>>;

impl PgStore {
    /// Copies everything `source` holds into this store's database, which
    /// must be empty, in one transaction (see the module's doc). `progress`
    /// hears what is being copied and how many so far. Call from a plain
    /// thread or the blocking pool.
    pub fn move_in(
        &self,
        source: &SledStore,
        progress: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<Moved, MoveError> {
        let outcome: Result<Moved, MoveError> = off_runtime(|| {
            let mut conn = self.pool.get()?;
            let Conn { client, prepared } = &mut *conn;
            let mut tx = client.transaction().map_err(pg)?;
            let moved = {
                let mut q = Q { c: &mut tx, prepared };
                match copy_all(&mut q, source, progress) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e)),
                }
            };
            tx.commit().map_err(pg)?;
            self.epochs.forget();
            Ok(Ok(moved))
        })
        .unwrap_or_else(|e| Err(MoveError::Store(e)));
        outcome
    }
}

/// Whether the database holds nothing of a store: Err says what it holds.
pub(super) fn refuse_unless_empty<C: ::postgres::GenericClient>(c: &mut C) -> Result<(), String> {
    let mut held = Vec::new();
    let mut exists = |sql: &str| c.query_one(sql, &[]).map(|r| r.get::<_, bool>(0)).unwrap_or(true);
    for table in
        ["territories", "people", "devices", "records", "feed", "audit", "photos", "import_runs", "store_epochs"]
    {
        // Table names are ours, not the caller's.
        if exists(&format!("SELECT EXISTS (SELECT 1 FROM {table})")) {
            held.push(table.to_string());
        }
    }
    if exists("SELECT seq > 0 FROM feed_counter WHERE id = 1") {
        held.push("a feed position".into());
    }
    if exists("SELECT seq > 0 FROM audit_counter WHERE id = 1") {
        held.push("an audit position".into());
    }
    if held.is_empty() { Ok(()) } else { Err(format!("it holds {}", held.join(", "))) }
}

/// The whole copy, in the caller's transaction.
fn copy_all(q: &mut Tx<'_, '_>, src: &SledStore, progress: &mut dyn FnMut(&str, u64)) -> Result<Moved, MoveError> {
    // Holding both counters keeps any server on this database from committing meanwhile.
    q.query_one("SELECT seq FROM feed_counter WHERE id = 1 FOR UPDATE", &[])?;
    q.query_one("SELECT seq FROM audit_counter WHERE id = 1 FOR UPDATE", &[])?;
    if let Err(held) = refuse_unless_empty(q.c) {
        return Err(MoveError::NotEmpty(held));
    }
    let mut moved = Moved::default();

    let territories = src.territories()?;
    for t in &territories {
        q.execute("INSERT INTO territories (path, name) VALUES ($1, $2)", &[&t.path.as_str(), &t.name])?;
        moved.territories += 1;
    }
    progress("territories", moved.territories);
    let people = src.people()?;
    for p in &people {
        let disabled = src.person_disabled_at(p.id)?;
        q.execute(
            "INSERT INTO people (id, username, name, role, territory, password_hash, created_at, disabled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &p.id.0,
                &p.username,
                &p.name,
                &p.role.as_str(),
                &p.territory.as_str(),
                &p.password_hash,
                &p.created_at,
                &disabled,
            ],
        )?;
        if let Some(device) = src.import_device(p.id)? {
            q.execute("INSERT INTO import_devices (person, device) VALUES ($1, $2)", &[&p.id.0, &device.0])?;
        }
        moved.people += 1;
    }
    progress("people", moved.people);
    for d in src.devices()? {
        q.execute(
            "INSERT INTO devices (id, person, name, actor, token_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&d.id.0, &d.person.0, &d.name, &d.actor, &d.token_hash.as_slice(), &d.created_at, &d.revoked_at],
        )?;
        let grace = src.device_grace(d.id)?;
        if !grace.is_empty() {
            let text = grace.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("\n");
            q.execute("INSERT INTO device_grace (device, territories) VALUES ($1, $2)", &[&d.id.0, &text])?;
        }
        if let Some(seen) = src.device_seen(d.id)? {
            let pending = seen.pending.map(big);
            q.execute(
                "INSERT INTO device_seen (device, at, pending) VALUES ($1, $2, $3)",
                &[&d.id.0, &seen.at, &pending],
            )?;
        }
        moved.devices += 1;
    }
    progress("devices", moved.devices);

    let mut audit_seq = 0;
    loop {
        let page = src.audit_after(audit_seq, 1024)?;
        let Some(last) = page.last() else { break };
        audit_seq = last.seq;
        for a in &page {
            q.execute(
                "INSERT INTO audit (seq, at, actor, action, detail, territory) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&big(a.seq), &a.at, &a.actor, &a.action, &a.detail, &a.territory.as_ref().map(TerritoryPath::as_str)],
            )?;
            moved.audit_entries += 1;
        }
    }
    progress("audit log entries", moved.audit_entries);

    // The trees the trait cannot list, from the backup stream.
    let mut walk = Walk { q, src, moved: &mut moved, roots: Vec::new(), last_photo_index: None, last_upload: None };
    let facts = src.backup(&mut walk)?;
    let grid_roots = walk.roots;
    progress("photos", moved.photos);

    // Every record and feed entry lies under a city: one of the territory
    // trees' roots, or of the grids holding records (in case one has no territory).
    let mut roots: Vec<TerritoryPath> = grid_roots;
    for t in &territories {
        let root = city_of(&t.path);
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    let (mut last_seq, mut last_at) = (0u64, 0i64);
    for root in &roots {
        let mut after = None;
        loop {
            let page = src.docs_in_scope(root, after, PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (id, doc) in &page {
                let summary = match src.summary(*id)? {
                    Some(s) => s,
                    // Stored before summaries were kept: read off the document.
                    None => {
                        let am = automerge::Automerge::load(&doc.bytes).map_err(|e| corrupt(format!("{id}: {e}")))?;
                        gridsync_shared::records::read_record(&am).map_err(|e| corrupt(format!("{id}: {e}")))?.summary()
                    }
                };
                // The whole document as the record's base: it reads back as sled gave it.
                q.execute(
                    "INSERT INTO records (id, grid, kind, seq, summary, flat_row, base, base_seq) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $4)",
                    &[
                        &id.0,
                        &doc.grid.as_str(),
                        &records::kind_index(doc.kind),
                        &big(doc.seq),
                        &enc(&summary)?,
                        &doc.bytes,
                    ],
                )?;
                moved.records += 1;
            }
            progress("records", moved.records);
            if page.len() < PAGE {
                break;
            }
        }
        let mut after = 0;
        loop {
            let page = src.feed_after(root, after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                let heads: Vec<Vec<u8>> =
                    src.doc_heads_at(e.doc, e.seq)?.unwrap_or_default().iter().map(|h| h.0.to_vec()).collect();
                q.execute(
                    "INSERT INTO feed (seq, at, doc, grid, device, heads, changes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&big(e.seq), &e.at, &e.doc.0, &e.grid.as_str(), &e.device.0, &heads, &e.changes],
                )?;
                moved.feed_entries += 1;
                last_seq = last_seq.max(e.seq);
                last_at = last_at.max(e.at);
            }
            progress("feed entries", moved.feed_entries);
        }
    }

    let epochs = src.epochs()?;
    for (n, e) in epochs.iter().enumerate() {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        q.execute(
            "INSERT INTO store_epochs (n, id, base_seq, at) VALUES ($1, $2, $3, $4)",
            &[&n, &e.id.as_slice(), &big(e.base_seq), &e.at],
        )?;
        moved.epochs += 1;
    }
    // Positions go on from where the sled store's counters stood: none handed out is reused.
    let head = facts.head_seq.max(last_seq).max(src.head_seq()?);
    q.execute("UPDATE feed_counter SET seq = $1, at = $2 WHERE id = 1", &[&big(head), &last_at])?;
    q.execute("UPDATE audit_counter SET seq = $1 WHERE id = 1", &[&big(facts.audit_seq.max(audit_seq))])?;
    moved.head_seq = head;

    let held: u64 = src.doc_counts()?.iter().map(|(_, n)| n).sum();
    if held > 0 && held != moved.records {
        return Err(MoveError::Mismatch(format!(
            "the sled store holds {held} records, {} were found under its territories",
            moved.records
        )));
    }
    let rows: i64 = q.query_one("SELECT COUNT(*) FROM feed", &[])?.get(0);
    if unsigned(rows)? != moved.feed_entries {
        return Err(MoveError::Mismatch(format!(
            "{} feed entries read, {rows} in the database (an entry under two territory trees?)",
            moved.feed_entries
        )));
    }
    Ok(moved)
}

/// The sled backup stream walked for the trees the trait cannot list.
struct Walk<'w, 'q, 'c> {
    q: &'w mut Tx<'q, 'c>,
    src: &'w SledStore,
    moved: &'w mut Moved,
    /// The cities of the grids holding records.
    roots: Vec<TerritoryPath>,
    /// The photo whose referrers were copied last (the index lists each record of a photo in turn).
    last_photo_index: Option<String>,
    /// Likewise the upload whose chunks were copied last.
    last_upload: Option<String>,
}

/// sled's default tree, as the backup names it.
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// The photo index's and the household keys' prefixes in it (see the sled store).
const PHOTO_INDEX: &[u8] = b"pr/";
const HOUSEHOLD_KEYS: &[u8] = b"hk/";
/// A grid's record list: `g/<grid>\0<doc>`.
const GRID_RECORDS: &[u8] = b"g/";

/// The city (first level) a territory lies in.
fn city_of(t: &TerritoryPath) -> TerritoryPath {
    t.ancestors_and_self().into_iter().next().unwrap_or_else(|| t.clone())
}

fn photo_hash(hex: &[u8]) -> Result<PhotoHash, StoreError> {
    let s = std::str::from_utf8(hex).map_err(|_| corrupt("a photo key is not text"))?;
    PhotoHash::parse(s).map_err(|e| corrupt(format!("photo key {s:?}: {e}")))
}

impl BackupSink for Walk<'_, '_, '_> {
    fn item(&mut self, tree: &[u8], key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let pgerr = |e: ::postgres::Error| pg(e);
        // The source is stopped, so no key is written during the walk: absent ones are none.
        let Some(value) = value else { return Ok(()) };
        match tree {
            DEFAULT_TREE if key.starts_with(GRID_RECORDS) => {
                let rest = &key[GRID_RECORDS.len()..];
                let end = rest.iter().position(|b| *b == 0).ok_or_else(|| corrupt("grid record key"))?;
                let grid = std::str::from_utf8(&rest[..end]).map_err(|_| corrupt("grid record key"))?;
                let city = city_of(&path(grid)?);
                if !self.roots.contains(&city) {
                    self.roots.push(city);
                }
            }
            DEFAULT_TREE if key.starts_with(PHOTO_INDEX) => {
                let hex =
                    key.get(PHOTO_INDEX.len()..PHOTO_INDEX.len() + 64).ok_or_else(|| corrupt("photo index key"))?;
                let hash = photo_hash(hex)?;
                if self.last_photo_index.as_deref() == Some(hash.as_str()) {
                    return Ok(());
                }
                let mut ord: HashMap<uuid::Uuid, i32> = HashMap::new();
                for r in self.src.photo_referrers(&hash)? {
                    let n = ord.entry(r.doc.0).or_insert(0);
                    self.q
                        .execute(
                            "INSERT INTO photo_refs (hash, doc, ord, grid, size, mime) VALUES ($1, $2, $3, $4, $5, $6)",
                            &[
                                &hash.as_str(),
                                &r.doc.0,
                                &*n,
                                &r.grid.as_str(),
                                &big(r.size),
                                &extras::type_code(r.mime),
                            ],
                        )
                        .map_err(pgerr)?;
                    *n += 1;
                }
                self.last_photo_index = Some(hash.as_str().to_string());
            }
            DEFAULT_TREE if key.starts_with(HOUSEHOLD_KEYS) => {
                let k: [u8; 32] =
                    key[HOUSEHOLD_KEYS.len()..].try_into().map_err(|_| corrupt("household key of another length"))?;
                if let Some(entry) = self.src.household_key(&k)? {
                    let digest = entry.digest.as_ref().map(|d| d.as_slice());
                    self.q
                        .execute(
                            "INSERT INTO household_keys (hash_key, doc, digest) VALUES ($1, $2, $3)",
                            &[&k.as_slice(), &entry.doc.0, &digest],
                        )
                        .map_err(pgerr)?;
                    self.moved.household_keys += 1;
                }
            }
            b"photos" => {
                let hash = photo_hash(key)?;
                if let Some((mime, bytes)) = self.src.photo(&hash)? {
                    self.q
                        .execute(
                            "INSERT INTO photos (hash, mime, bytes) VALUES ($1, $2, $3)",
                            &[&hash.as_str(), &extras::type_code(mime), &bytes],
                        )
                        .map_err(pgerr)?;
                    self.moved.photos += 1;
                }
            }
            b"photo_uploads" => {
                let hash = photo_hash(key.get(..64).ok_or_else(|| corrupt("upload key"))?)?;
                if self.last_upload.as_deref() == Some(hash.as_str()) {
                    return Ok(());
                }
                // What the upload holds from its start without a gap: all a phone can resume from.
                let bytes = self.src.upload_bytes(&hash)?;
                if !bytes.is_empty() {
                    self.q
                        .execute(
                            "INSERT INTO photo_uploads (hash, at_offset, bytes) VALUES ($1, 0, $2)",
                            &[&hash.as_str(), &bytes],
                        )
                        .map_err(pgerr)?;
                    self.moved.uploads += 1;
                }
                self.last_upload = Some(hash.as_str().to_string());
            }
            b"import_runs" => {
                // `<created_at, 8 bytes big-endian><id>` → the run's JSON.
                let (at, id) = key.split_at_checked(8).ok_or_else(|| corrupt("import run key"))?;
                let created_at = i64::from_be_bytes(at.try_into().map_err(|_| corrupt("import run key"))?);
                let id = std::str::from_utf8(id).map_err(|_| corrupt("import run id"))?;
                self.q
                    .execute(
                        "INSERT INTO import_runs (id, created_at, run) VALUES ($1, $2, $3)",
                        &[&id, &created_at, &value],
                    )
                    .map_err(pgerr)?;
                self.moved.import_runs += 1;
            }
            b"import_secrets" => {
                // `<id>` → the secret's bytes (the trait can only take them, which would remove them).
                let id = std::str::from_utf8(key).map_err(|_| corrupt("import secret id"))?;
                self.q
                    .execute("INSERT INTO import_secrets (id, bytes) VALUES ($1, $2)", &[&id, &value])
                    .map_err(pgerr)?;
            }
            _ => {}
        }
        Ok(())
    }
}
