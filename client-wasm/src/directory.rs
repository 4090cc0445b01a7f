//! What the phone knows beyond its records: the directory of names in the
//! person's scope (kept offline, so records show who and where in words), and
//! which records others changed and when they arrived (for "changed since I
//! last looked"). Both live in the replica's storage and survive a reload.

use crate::replica::{Replica, ReplicaError};
use crate::storage::{Storage, StoreOp};
use gridsync_shared::directory::{Directory, short_id};
use gridsync_shared::{DocId, PersonId, TerritoryPath};
use serde::{Deserialize, Serialize};

/// Storage key of the kept directory.
pub(crate) const DIRECTORY_KEY: &str = "directory";
/// Storage key of the log of records others changed.
pub(crate) const CHANGED_KEY: &str = "changed";
/// Most records the change log remembers (the oldest are forgotten first).
pub const CHANGED_LIMIT: usize = 2_000;

/// The directory as kept, with the server's tag for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Stored {
    etag: Option<String>,
    directory: Directory,
}

/// The directory in memory. Lookups go through the lists one by one: a
/// directory holds hundreds of people, and an index would cost the phone's
/// WebAssembly more than it saves.
#[derive(Debug, Default)]
pub(crate) struct KeptDirectory {
    stored: Option<Stored>,
}

impl KeptDirectory {
    fn new(stored: Stored) -> Self {
        Self { stored: Some(stored) }
    }

    /// The directory kept in storage; a damaged one is ignored (the next sync
    /// fetches it again) rather than keeping the phone's records from opening.
    pub(crate) fn load(bytes: &[u8]) -> Self {
        match postcard::from_bytes::<Stored>(bytes) {
            Ok(stored) if stored.directory.check().is_ok() => Self::new(stored),
            _ => Self::default(),
        }
    }
}

/// Records whose changes by others arrived, each with the time it last did
/// (Unix ms, the phone's clock), in the order they arrived (oldest first);
/// at most [`CHANGED_LIMIT`].
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    entries: Vec<(DocId, i64)>,
    /// Changed since last saved.
    dirty: bool,
}

impl ChangeLog {
    /// The log kept in storage; a damaged one starts empty.
    pub(crate) fn load(bytes: &[u8]) -> Self {
        Self { entries: postcard::from_bytes(bytes).unwrap_or_default(), dirty: false }
    }

    /// Notes that changes by others to `ids` arrived at `at`.
    pub(crate) fn note(&mut self, ids: &[DocId], at: i64) {
        if ids.is_empty() {
            return;
        }
        self.entries.retain(|(id, _)| !ids.contains(id));
        for id in ids {
            if !self.entries.iter().rev().take_while(|(_, t)| *t == at).any(|(e, _)| e == id) {
                self.entries.push((*id, at));
            }
        }
        let excess = self.entries.len().saturating_sub(CHANGED_LIMIT);
        self.entries.drain(..excess);
        self.dirty = true;
    }

    /// The write that saves the log, if it changed since last saved.
    pub(crate) fn take_op(&mut self) -> Option<StoreOp> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let value = postcard::to_allocvec(&self.entries).ok()?;
        Some(StoreOp::Put { key: CHANGED_KEY.into(), value })
    }
}

impl<S: Storage> Replica<S> {
    /// Keeps `directory` (as `GET /v1/directory` sent it, with its `etag`) in
    /// storage. Returns whether it differs from the one kept before. A
    /// directory that fails [`Directory::check`] is refused and nothing changes.
    pub fn set_directory(&mut self, directory: Directory, etag: Option<String>) -> Result<bool, ReplicaError> {
        directory.check()?;
        let stored = Stored { etag, directory };
        let before = self.directory.stored.as_ref();
        if before == Some(&stored) {
            return Ok(false);
        }
        let changed = before.is_none_or(|b| b.directory != stored.directory);
        let value = postcard::to_allocvec(&stored).map_err(|e| ReplicaError::Corrupt(e.to_string()))?;
        self.storage.commit(vec![StoreOp::Put { key: DIRECTORY_KEY.into(), value }])?;
        self.directory = KeptDirectory::new(stored);
        Ok(changed)
    }

    /// The directory kept on the phone, if one has arrived.
    pub fn directory(&self) -> Option<&Directory> {
        self.directory.stored.as_ref().map(|s| &s.directory)
    }

    /// The server's tag of the kept directory (sent back as `If-None-Match`).
    pub fn directory_etag(&self) -> Option<&str> {
        self.directory.stored.as_ref().and_then(|s| s.etag.as_deref())
    }

    /// A person's name from the directory, if listed.
    pub fn person_name(&self, id: PersonId) -> Option<&str> {
        self.directory()?.person(id).map(|p| p.name.as_str())
    }

    /// A person as shown: their name, or the start of their id when the
    /// directory does not list them.
    pub fn person_label(&self, id: &str) -> String {
        match id.parse().ok().and_then(|id| self.person_name(id)) {
            Some(name) => name.to_string(),
            None => short_id(id).to_string(),
        }
    }

    /// A territory's name from the directory, if listed.
    pub fn territory_name(&self, path: &TerritoryPath) -> Option<&str> {
        self.directory()?.territory_name(path)
    }

    /// A territory as shown: its name, or its path when not listed.
    pub fn territory_label(&self, path: &str) -> String {
        match path.parse().ok().and_then(|p: TerritoryPath| self.territory_name(&p).map(str::to_string)) {
            Some(name) => name,
            None => path.to_string(),
        }
    }

    /// A record's kind, known without parsing it.
    pub fn kind_of(&self, id: DocId) -> Option<gridsync_shared::RecordKind> {
        self.docs.get(&id).and_then(crate::local_doc::LocalDoc::kind)
    }

    /// Records on the phone whose changes by others (not this phone's own
    /// edits) arrived after `since` (Unix ms, the phone's clock), each with
    /// when they last did, newest first.
    pub fn changed_since(&self, since: i64) -> Vec<(DocId, i64)> {
        self.changed
            .entries
            .iter()
            .rev()
            .filter(|(id, at)| *at > since && self.docs.contains_key(id))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> DocId {
        DocId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn the_change_log_keeps_one_entry_per_record_and_forgets_the_oldest_past_its_limit() {
        let mut log = ChangeLog::default();
        log.note(&[id(1), id(2)], 10);
        log.note(&[id(1)], 20);
        assert_eq!(log.entries, vec![(id(2), 10), (id(1), 20)]);
        let many: Vec<DocId> = (100..100 + CHANGED_LIMIT as u128).map(id).collect();
        log.note(&many, 30);
        assert_eq!(log.entries.len(), CHANGED_LIMIT);
        assert!(log.entries.iter().all(|(_, at)| *at == 30), "the older entries were forgotten first");
        let op = log.take_op().expect("a write");
        assert!(log.take_op().is_none(), "written once");
        let StoreOp::Put { value, .. } = op else { panic!("a put") };
        assert_eq!(ChangeLog::load(&value).entries, log.entries);
    }
}
