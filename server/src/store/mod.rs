//! The server's durable state behind one trait, small enough that another
//! engine (PostgreSQL and its distributed kin) can stand behind it.
//!
//! Records live as an ordered change feed with a durable sequence: every
//! accepted push is one [`Store::commit_doc`] that atomically replaces the
//! document and appends a feed entry, indexed under each territory above the
//! record's grid, so any scope's feed is one ordered range. Entries become
//! visible in sequence order. Nothing assumes the process holds state in memory.
//!
//! Photos are blobs beside the records, named by their SHA-256: a commit also
//! indexes which records reference which photo ([`Store::photo_referrers`]),
//! an upload is kept durably chunk by chunk until its bytes are all there
//! ([`Store::append_upload`]), and a verified photo is stored durably before
//! it is acknowledged ([`Store::finish_upload`]).

#[cfg(test)]
mod conformance;
pub mod postgres;
mod sled_store;

pub use postgres::PgStore;
pub use sled_store::{PrefixBytes, SledStore, VacuumError, Vacuumed};

use automerge::ChangeHash;
use gridsync_shared::photos::{PhotoHash, PhotoRef, PhotoType};
use gridsync_shared::records::RecordSummary;
use gridsync_shared::{DeviceId, DocId, PersonId, RecordKind, Role, TerritoryPath};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A store failure.
#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// The engine failed (disk, corruption).
    #[error("store engine error: {0}")]
    Engine(String),
    /// Another server process holds this data directory.
    #[error("the data directory {0} is in use by a running gridsync-server; stop it first, or use the HTTP admin API")]
    Locked(String),
    /// Stored bytes could not be decoded.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A unique name is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The store cannot write now (disk full, I/O error). Nothing from the
    /// failed write is acknowledged; the store recovers by itself once
    /// writing works again.
    #[error(
        "服务器暂时无法保存数据（磁盘已满或读写错误），请稍后再试；已确认的记录都已保存。The server cannot save data now (disk full or I/O error); try again later. Everything acknowledged is saved. ({0})"
    )]
    Unwritable(String),
}

/// A node of the territory tree with its human name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Territory {
    /// Its path.
    pub path: TerritoryPath,
    /// Its name, e.g. 东湖社区.
    pub name: String,
}

/// A person who signs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Stable id.
    pub id: PersonId,
    /// Sign-in name, unique.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Territory they are responsible for.
    pub territory: TerritoryPath,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A registered device of one person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Stable id (the first half of its token).
    pub id: DeviceId,
    /// Whose device.
    pub person: PersonId,
    /// A name given at registration.
    pub name: String,
    /// The Automerge actor id this device must write with (16 bytes).
    pub actor: Vec<u8>,
    /// SHA-256 of the token's secret half.
    pub token_hash: [u8; 32],
    /// Unix ms.
    pub created_at: i64,
    /// Set once revoked; a revoked device is refused everywhere.
    pub revoked_at: Option<i64>,
}

/// When a device was last seen, for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSeen {
    /// Its last authenticated request, Unix ms.
    pub at: i64,
    /// How many changes it held unsent after its last sync, if it said.
    pub pending: Option<u64>,
}

/// A record document as stored, with what the feed needs to know of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDoc {
    /// The record's grid.
    pub grid: TerritoryPath,
    /// The record's kind.
    pub kind: RecordKind,
    /// Sequence number of the last change to it.
    pub seq: u64,
    /// `Automerge::save()` of the document.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// One accepted push, to be committed atomically.
#[derive(Clone, Debug)]
pub struct DocWrite {
    /// The record.
    pub doc: DocId,
    /// Its grid.
    pub grid: TerritoryPath,
    /// Its kind, household and time.
    pub summary: RecordSummary,
    /// The whole merged document, saved. A store may keep only `changes`:
    /// these bytes are needed when `changes` is empty (they then replace
    /// what the store held of the record).
    pub bytes: Vec<u8>,
    /// The document's heads after the merge.
    pub heads: Vec<ChangeHash>,
    /// The device that pushed.
    pub device: DeviceId,
    /// The raw changes that were new to the server: with what the store held
    /// of the record, all of the merged document.
    pub changes: Vec<Vec<u8>>,
    /// Every photo the merged record references ([`Record::photos`]), indexed
    /// in the same atomic write (empty for households and promises).
    ///
    /// [`Record::photos`]: gridsync_shared::records::Record::photos
    pub photos: Vec<PhotoRef>,
    /// The merged record flattened for exports and reports
    /// ([`gridsync_shared::records::row`]), kept beside the document so that
    /// readers need not parse it; None when the caller has none.
    pub row: Option<Vec<u8>>,
}

/// A record as listed for exports and reports, without its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordListing {
    /// The record.
    pub id: DocId,
    /// Sequence number of its last commit: the row is the record as of it.
    pub seq: u64,
    /// Its flattened row as of `seq`, where the store keeps one.
    pub row: Option<Vec<u8>>,
}

/// A record that references a photo, as the photo index knows it: enough to
/// decide who may read or upload the photo without loading the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoReferrer {
    /// The record.
    pub doc: DocId,
    /// Its grid as of its last commit.
    pub grid: TerritoryPath,
    /// The size the record gives the photo.
    pub size: u64,
    /// The type the record gives the photo.
    pub mime: PhotoType,
}

/// What [`Store::append_upload`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadAppend {
    /// The bytes were appended and are durable; `received` bytes are held now.
    Appended {
        /// Bytes held after the append.
        received: u64,
    },
    /// Nothing was appended: the offset was not where the held bytes end.
    WrongOffset {
        /// Bytes held (where the next chunk must start).
        received: u64,
    },
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Position in the feed; strictly increasing.
    pub seq: u64,
    /// Server time of the commit, Unix ms (non-decreasing with `seq`).
    pub at: i64,
    /// The record.
    pub doc: DocId,
    /// Its grid.
    pub grid: TerritoryPath,
    /// The pushing device.
    pub device: DeviceId,
    /// The raw changes added.
    #[serde(with = "gridsync_shared::protocol::byte_strings")]
    pub changes: Vec<Vec<u8>>,
}

/// One administrative action or export, appended and never edited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the audit log.
    pub seq: u64,
    /// Unix ms.
    pub at: i64,
    /// Who ("cli" for the command line on the server machine).
    pub actor: String,
    /// What, e.g. `device.revoke`.
    pub action: String,
    /// Details: the target and any reason given.
    pub detail: String,
    /// The territory the action concerns (the person's, the snapshot's, the
    /// territory added); `None` for the whole store (a backup, a restore, a
    /// sign-in lockout) and for entries written before territories were kept.
    /// An administrator sees the entries of territories inside theirs.
    pub territory: Option<TerritoryPath>,
}

impl AuditEntry {
    /// Whether the administrator `admin` may read this entry: it concerns a
    /// territory inside theirs, or they did it. Entries that concern the whole
    /// store are for the administrators of a whole city.
    pub fn visible_to(&self, admin: &Person) -> bool {
        let concerns_theirs = match &self.territory {
            Some(t) => admin.territory.contains(t),
            None => admin.territory.parent().is_none(),
        };
        concerns_theirs || self.actor.strip_prefix("person:") == Some(admin.username.as_str())
    }
}

/// One entry of the household key index: a stable key of a household (its
/// 户号, or its head's ID number) as a SHA-256, so that no ID number is a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HouseholdKey {
    /// SHA-256 of the key text (`no:<户号>` or `id:<ID number>`).
    pub key: [u8; 32],
    /// What the key names.
    pub entry: HouseholdKeyEntry,
    /// Replace an existing entry (an import's), or only add a missing one (a
    /// commit's head-ID key: the first household with that head keeps it).
    pub replace: bool,
}

/// What a household key names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdKeyEntry {
    /// The household record.
    pub doc: DocId,
    /// SHA-256 of the rows last imported for it (None when the key was
    /// indexed at a commit): the same rows again change nothing.
    pub digest: Option<[u8; 32]>,
}

/// The durable state of a gridsync server.
pub trait Store: Send + Sync + 'static {
    /// Adds or renames a territory node.
    fn put_territory(&self, territory: &Territory) -> Result<(), StoreError>;
    /// Every territory node, in path order.
    fn territories(&self) -> Result<Vec<Territory>, StoreError>;

    /// Adds a person; fails with `Conflict` if the username is taken by someone else.
    fn put_person(&self, person: &Person) -> Result<(), StoreError>;
    /// A person by id.
    fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError>;
    /// A person by sign-in name.
    fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError>;
    /// Everyone, in id order.
    fn people(&self) -> Result<Vec<Person>, StoreError>;

    /// Adds or updates a device.
    fn put_device(&self, device: &Device) -> Result<(), StoreError>;
    /// A device by id.
    fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError>;
    /// Every device, in id order.
    fn devices(&self) -> Result<Vec<Device>, StoreError>;

    /// When `person` was disabled (sign-in refused, every device revoked), or
    /// None while they may sign in. Kept apart from [`Person`], whose stored
    /// layout is fixed (postcard), so stores written before it open unchanged.
    fn person_disabled_at(&self, person: PersonId) -> Result<Option<i64>, StoreError>;
    /// Disables `person` as of `at`, or enables them again with None. Not yet
    /// durable: see [`Store::flush`].
    fn set_person_disabled(&self, person: PersonId, at: Option<i64>) -> Result<(), StoreError>;

    /// The territories a device may still push its pending work into after
    /// its person was moved (each territory it was moved out of, oldest
    /// first), until the device syncs with nothing left to push. Empty: none.
    fn device_grace(&self, device: DeviceId) -> Result<Vec<TerritoryPath>, StoreError>;
    /// Sets a device's grace territories; an empty list ends the grace.
    fn set_device_grace(&self, device: DeviceId, territories: &[TerritoryPath]) -> Result<(), StoreError>;

    /// A record document, if the server has it.
    fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError>;
    /// Atomically stores the merged document and appends its feed entry;
    /// returns the entry's sequence number. Not yet durable: see [`Store::flush`].
    fn commit_doc(&self, write: DocWrite, at: i64) -> Result<u64, StoreError>;
    /// A record's summary as of its last commit (None for records stored
    /// before summaries were kept).
    fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError>;
    /// The summaries of `ids`, as [`Store::summary`] gives each (records
    /// without one are absent): one read where the engine allows, for a page of the feed.
    fn summaries(&self, ids: &[DocId]) -> Result<std::collections::HashMap<DocId, RecordSummary>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.summary(*id)? {
                out.insert(*id, s);
            }
        }
        Ok(out)
    }
    /// Durable feed entries within `scope` with `seq > after` (up to
    /// [`Store::head_seq`]), in order, at most `limit`.
    fn feed_after(&self, scope: &TerritoryPath, after: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError>;
    /// Documents within `scope` with id after `after`, in id order, at most `limit`.
    fn docs_in_scope(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError>;
    /// Records of `kind` within `scope` with id after `after`, in id order, at
    /// most `limit`, with their rows where kept. A store that keeps no rows
    /// lists from [`Store::docs_in_scope`] (rows None).
    fn records_in_scope(
        &self,
        scope: &TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<RecordListing>, StoreError> {
        let mut out = Vec::new();
        let mut after = after;
        while out.len() < limit {
            let page = self.docs_in_scope(scope, after, limit.max(64))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            let full = page.len() >= limit.max(64);
            for (id, doc) in page {
                if doc.kind == kind && out.len() < limit {
                    out.push(RecordListing { id, seq: doc.seq, row: None });
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
    /// How many records of each kind each grid within `scope` holds, voided
    /// ones included (the kind is the index's, not the document's): one
    /// entry per grid and kind held, in grid order then [`RecordKind::ALL`]
    /// order. A store with per-grid record lists answers from them without
    /// loading a document; others count over [`Store::docs_in_scope`].
    fn record_counts_by_grid(
        &self,
        scope: &TerritoryPath,
    ) -> Result<Vec<(TerritoryPath, RecordKind, u64)>, StoreError> {
        let mut counts: std::collections::BTreeMap<(TerritoryPath, usize), u64> = std::collections::BTreeMap::new();
        let mut after = None;
        loop {
            let page = self.docs_in_scope(scope, after, 256)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            let full = page.len() >= 256;
            for (_, doc) in page {
                let k = RecordKind::ALL.iter().position(|k| *k == doc.kind).unwrap_or(usize::MAX);
                *counts.entry((doc.grid, k)).or_default() += 1;
            }
            if !full {
                break;
            }
        }
        Ok(counts
            .into_iter()
            .filter_map(|((grid, k), n)| RecordKind::ALL.get(k).map(|kind| (grid, *kind, n)))
            .collect())
    }
    /// The document's heads as of feed position `seq` (None if it did not exist yet).
    fn doc_heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<ChangeHash>>, StoreError>;
    /// The highest sequence number that is durable: feed readers see entries up
    /// to here only, so a position a phone has seen is never lost in a crash and
    /// handed to another entry.
    fn head_seq(&self) -> Result<u64, StoreError>;
    /// The feed position as of server time `at_ms`: the last entry committed at
    /// or before it (0 if none). Feed times never decrease, so this is exact.
    fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError>;
    /// Counts of documents, feed entries and bytes on disk, for health and benchmarks.
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// How many documents the store holds, per kind, for monitoring. May
    /// scan every document's summary: callers cache it. A store that cannot
    /// count answers an empty list.
    fn doc_counts(&self) -> Result<Vec<(RecordKind, u64)>, StoreError> {
        Ok(Vec::new())
    }

    /// Compacts up to `limit` records whose commits have piled up (each gets
    /// one saved document in place of its commits' changes), without holding
    /// back writers for more than a batch; returns how many it compacted.
    /// Readers see the same documents and feed before and after. Engines that
    /// need no compaction answer 0.
    fn compact_some(&self, limit: usize) -> Result<usize, StoreError> {
        let _ = limit;
        Ok(0)
    }

    /// Up to `limit` records after `after` (in id order) whose flattened row is
    /// not kept (written before rows were, or by a committer without one),
    /// with the position of their last commit. Engines without rows answer none.
    fn records_without_rows(&self, after: Option<DocId>, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        let _ = (after, limit);
        Ok(Vec::new())
    }
    /// Keeps `row` as the record's row if its last commit is still `seq`
    /// (false, and nothing kept, if it changed meanwhile).
    fn set_row(&self, id: DocId, seq: u64, row: Vec<u8>) -> Result<bool, StoreError> {
        let _ = (id, seq, row);
        Ok(false)
    }

    /// Appends to the audit log an entry about the whole store; returns the
    /// entry's position.
    fn append_audit(&self, actor: &str, action: &str, detail: &str, at: i64) -> Result<u64, StoreError> {
        self.append_audit_in(None, actor, action, detail, at)
    }
    /// Appends to the audit log an entry about `territory` (`None`: the whole
    /// store); returns the entry's position.
    fn append_audit_in(
        &self,
        territory: Option<&TerritoryPath>,
        actor: &str,
        action: &str,
        detail: &str,
        at: i64,
    ) -> Result<u64, StoreError>;
    /// Audit entries with `seq > after`, at most `limit`.
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Makes everything committed so far durable; returns once it is on disk.
    fn flush(&self) -> Result<(), StoreError>;

    /// A stored photo's type and bytes.
    fn photo(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError>;
    /// Whether the photo is stored (without reading its bytes).
    fn has_photo(&self, hash: &PhotoHash) -> Result<bool, StoreError>;
    /// Every record that references the photo, one entry per record and
    /// distinct (size, type) it names; in record id order. Kept by
    /// [`Store::commit_doc`] from [`DocWrite::photos`].
    fn photo_referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError>;
    /// Bytes of an unfinished upload held so far (0 if none), counted from
    /// the photo's start without gaps.
    fn upload_received(&self, hash: &PhotoHash) -> Result<u64, StoreError>;
    /// Appends `bytes` to an unfinished upload if `offset` is where the held
    /// bytes end (else appends nothing); durable when it returns
    /// [`UploadAppend::Appended`], so an upload cut off resumes after a restart.
    fn append_upload(&self, hash: &PhotoHash, offset: u64, bytes: &[u8]) -> Result<UploadAppend, StoreError>;
    /// The bytes of an unfinished upload held so far.
    fn upload_bytes(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError>;
    /// Stores a photo whose bytes the caller has verified (size, type,
    /// SHA-256) and drops its unfinished upload; durable when it returns.
    fn finish_upload(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError>;
    /// Drops an unfinished upload (its bytes failed verification).
    fn discard_upload(&self, hash: &PhotoHash) -> Result<(), StoreError>;

    /// As [`Store::commit_doc`], and in the same atomic write indexes the
    /// household keys given. An engine without the index ignores them.
    fn commit_doc_with_keys(&self, write: DocWrite, at: i64, keys: &[HouseholdKey]) -> Result<u64, StoreError> {
        let _ = keys;
        self.commit_doc(write, at)
    }
    /// Commits many documents (an import's batch), each with its household
    /// keys, as one atomic write where the engine allows; returns the last sequence number.
    fn commit_docs(&self, writes: Vec<(DocWrite, Vec<HouseholdKey>)>, at: i64) -> Result<u64, StoreError> {
        let mut last = 0;
        for (w, keys) in writes {
            last = self.commit_doc_with_keys(w, at, &keys)?;
        }
        Ok(last)
    }
    /// The household a key (SHA-256 of `no:<户号>` or `id:<ID number>`) names.
    fn household_key(&self, key: &[u8; 32]) -> Result<Option<HouseholdKeyEntry>, StoreError> {
        let _ = key;
        Ok(None)
    }
    /// Keeps an import run (JSON, the engine's [`crate::imports::ImportRun`]), durably.
    fn put_import_run(&self, id: &str, created_at: i64, run: &[u8]) -> Result<(), StoreError> {
        let _ = (id, created_at, run);
        Err(StoreError::Engine("this store keeps no import runs".into()))
    }
    /// An import run by id.
    fn import_run(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = id;
        Ok(None)
    }
    /// Import runs, newest first, at most `limit`.
    fn import_runs(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }
    /// Keeps an import's secret (the initial passwords file) until taken, durably.
    fn put_import_secret(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let _ = (id, bytes);
        Err(StoreError::Engine("this store keeps no import secrets".into()))
    }
    /// Takes an import's secret: returned once, then gone (durably).
    fn take_import_secret(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = id;
        Ok(None)
    }
    /// The device an administrator's imports write with, if made.
    fn import_device(&self, person: PersonId) -> Result<Option<DeviceId>, StoreError> {
        let _ = person;
        Ok(None)
    }
    /// Records the device an administrator's imports write with.
    fn set_import_device(&self, person: PersonId, device: DeviceId) -> Result<(), StoreError> {
        let _ = (person, device);
        Err(StoreError::Engine("this store keeps no import devices".into()))
    }

    /// Records when `device` last made an authenticated request, and how
    /// many changes it still held unsent if it said; callers throttle it. Not
    /// a change of the device: nothing is audited.
    fn note_device_seen(&self, device: DeviceId, seen: DeviceSeen) -> Result<(), StoreError> {
        let _ = (device, seen);
        Ok(())
    }
    /// What was last recorded by [`Store::note_device_seen`] for `device`, if anything.
    fn device_seen(&self, device: DeviceId) -> Result<Option<DeviceSeen>, StoreError> {
        let _ = device;
        Ok(None)
    }

    /// The store's epochs after its original one, oldest first: one per
    /// restore from a backup (none for a store never restored). Sync cursors
    /// name the epoch they were issued in (see [`crate::sync`]).
    fn epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        Ok(Vec::new())
    }
    /// Writes a backup of everything the store holds into `sink`, consistent
    /// as of one moment, while writers go on (see [`crate::backup`]).
    fn backup(&self, sink: &mut dyn crate::backup::BackupSink) -> Result<crate::backup::BackupFacts, StoreError> {
        let _ = sink;
        Err(StoreError::Engine("this store cannot make backups".into()))
    }
    /// When the last backup was made, and at which feed position.
    fn last_backup(&self) -> Result<Option<crate::backup::BackupMark>, StoreError> {
        Ok(None)
    }
    /// Remembers a finished backup (for [`Store::last_backup`]).
    fn note_backup(&self, mark: &crate::backup::BackupMark) -> Result<(), StoreError> {
        let _ = mark;
        Ok(())
    }

    /// Whether the store can write now, for `/healthz`: a cheap probe (an
    /// engine may answer from a probe made within the last second). A store
    /// that failed to write tries to recover here, as on its next write, so
    /// it comes back by itself once writing works again. Engines without a
    /// probe answer yes.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An epoch of a store: it begins when the store is restored from a backup,
/// whose feed stood at `base_seq`. Feed positions up to `base_seq` name the
/// same entries as in the epoch the backup was taken in; later ones do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEpoch {
    /// Random, new at each restore.
    pub id: [u8; 16],
    /// The restored backup's feed position (the head when the epoch began).
    pub base_seq: u64,
    /// When the restore ran, Unix ms.
    pub at: i64,
}

/// Sizes of what a store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Highest feed sequence number.
    pub head_seq: u64,
    /// Bytes the engine reports on disk.
    pub disk_bytes: u64,
}
