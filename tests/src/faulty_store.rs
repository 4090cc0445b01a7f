//! A store that fails its writes on demand, around a real [`SledStore`]: for
//! testing what the server does while its disk is full or failing, on any
//! machine (the tmpfs test needs `mount`).

use gridsync_server::store::{
    AuditEntry, Device, DocWrite, FeedEntry, Person, PhotoReferrer, SledStore, Store, StoreError, StoreStats,
    StoredDoc, Territory, UploadAppend,
};
use gridsync_shared::photos::{PhotoHash, PhotoType};
use gridsync_shared::records::RecordSummary;
use gridsync_shared::{DeviceId, DocId, PersonId, TerritoryPath};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

/// The error every failed write returns, as sled reports a full disk.
pub const INJECTED: &str = "injected: No space left on device (os error 28)";

/// A [`SledStore`] whose writes fail once a countdown runs out; reads always work.
pub struct FaultyStore {
    inner: SledStore,
    /// Writes that still succeed; negative: no failures at all.
    writes_left: AtomicI64,
}

impl FaultyStore {
    /// A store in `dir` that writes normally until told otherwise.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self { inner: SledStore::open(dir)?, writes_left: AtomicI64::new(-1) })
    }

    /// From now on, `n` more writes succeed and every later one fails.
    pub fn fail_writes_after(&self, n: i64) {
        self.writes_left.store(n.max(0), Ordering::SeqCst);
    }

    /// Writes work again.
    pub fn heal(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
    }

    fn write(&self) -> Result<(), StoreError> {
        let left =
            self.writes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(if n > 0 { n - 1 } else { n }));
        match left {
            Ok(0) => Err(StoreError::Unwritable(INJECTED.into())),
            _ => Ok(()),
        }
    }
}

impl Store for FaultyStore {
    fn put_territory(&self, t: &Territory) -> Result<(), StoreError> {
        self.write()?;
        self.inner.put_territory(t)
    }
    fn territories(&self) -> Result<Vec<Territory>, StoreError> {
        self.inner.territories()
    }
    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        self.write()?;
        self.inner.put_person(p)
    }
    fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        self.inner.person(id)
    }
    fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError> {
        self.inner.person_by_username(username)
    }
    fn people(&self) -> Result<Vec<Person>, StoreError> {
        self.inner.people()
    }
    fn put_device(&self, d: &Device) -> Result<(), StoreError> {
        self.write()?;
        self.inner.put_device(d)
    }
    fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        self.inner.device(id)
    }
    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.inner.devices()
    }
    fn person_disabled_at(&self, person: PersonId) -> Result<Option<i64>, StoreError> {
        self.inner.person_disabled_at(person)
    }
    fn set_person_disabled(&self, person: PersonId, at: Option<i64>) -> Result<(), StoreError> {
        self.write()?;
        self.inner.set_person_disabled(person, at)
    }
    fn device_grace(&self, device: DeviceId) -> Result<Vec<TerritoryPath>, StoreError> {
        self.inner.device_grace(device)
    }
    fn set_device_grace(&self, device: DeviceId, territories: &[TerritoryPath]) -> Result<(), StoreError> {
        self.write()?;
        self.inner.set_device_grace(device, territories)
    }
    fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.inner.load_doc(id)
    }
    fn commit_doc(&self, w: DocWrite, at: i64) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.commit_doc(w, at)
    }
    fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError> {
        self.inner.summary(id)
    }
    fn feed_after(&self, scope: &TerritoryPath, after: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.inner.feed_after(scope, after, limit)
    }
    fn docs_in_scope(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        self.inner.docs_in_scope(scope, after, limit)
    }
    fn doc_heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<automerge::ChangeHash>>, StoreError> {
        self.inner.doc_heads_at(id, seq)
    }
    fn head_seq(&self) -> Result<u64, StoreError> {
        self.inner.head_seq()
    }
    fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError> {
        self.inner.seq_at(at_ms)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    fn append_audit(&self, actor: &str, action: &str, detail: &str, at: i64) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.append_audit(actor, action, detail, at)
    }
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit_after(after, limit)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.write()?;
        self.inner.flush()
    }
    fn photo(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError> {
        self.inner.photo(hash)
    }
    fn has_photo(&self, hash: &PhotoHash) -> Result<bool, StoreError> {
        self.inner.has_photo(hash)
    }
    fn photo_referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError> {
        self.inner.photo_referrers(hash)
    }
    fn upload_received(&self, hash: &PhotoHash) -> Result<u64, StoreError> {
        self.inner.upload_received(hash)
    }
    fn append_upload(&self, hash: &PhotoHash, offset: u64, bytes: &[u8]) -> Result<UploadAppend, StoreError> {
        self.write()?;
        self.inner.append_upload(hash, offset, bytes)
    }
    fn upload_bytes(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError> {
        self.inner.upload_bytes(hash)
    }
    fn finish_upload(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError> {
        self.write()?;
        self.inner.finish_upload(hash, mime, bytes)
    }
    fn discard_upload(&self, hash: &PhotoHash) -> Result<(), StoreError> {
        self.write()?;
        self.inner.discard_upload(hash)
    }
    fn check_writable(&self) -> Result<(), StoreError> {
        match self.writes_left.load(Ordering::SeqCst) {
            0 => Err(StoreError::Unwritable(INJECTED.into())),
            _ => self.inner.check_writable(),
        }
    }
}
