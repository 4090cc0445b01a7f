//! A store for tests: a real [`SledStore`] seen through hooks. Its writes can
//! be made to fail on demand (what the server does while its disk is full or
//! failing, on any machine: the tmpfs test needs `mount`), the documents it
//! loads are counted, and it can list records as another engine would (no
//! rows, no record lists) or with rows made or damaged for the test.

use gridsync_server::store::{
    AuditEntry, Device, DocWrite, FeedEntry, Person, PhotoReferrer, RecordListing, SledStore, Store, StoreError,
    StoreStats, StoredDoc, Territory, UploadAppend,
};
use gridsync_shared::photos::{PhotoHash, PhotoType};
use gridsync_shared::records::RecordSummary;
use gridsync_shared::records::row::encode_row;
use gridsync_shared::{DeviceId, DocId, PersonId, RecordKind, TerritoryPath};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// The error every failed write returns, as sled reports a full disk.
pub const INJECTED: &str = "injected: No space left on device (os error 28)";

/// How a [`TestStore`] lists records and counts them per grid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Listing {
    /// As the sled store does: the rows kept at each commit, record lists.
    Sled,
    /// As a store that keeps neither rows nor record lists: the [`Store`]
    /// trait's defaults, from documents.
    FromDocuments,
    /// Each record with a row made from its stored document now.
    RowsFromDocuments,
    /// Each record with bytes that do not decode as a row.
    DamagedRows,
}

/// A [`SledStore`] whose writes fail once a countdown runs out (reads always
/// work), which counts the documents it loads and lists as [`Listing`] says.
pub struct TestStore {
    inner: Arc<SledStore>,
    /// Writes that still succeed; negative: no failures at all.
    writes_left: AtomicI64,
    loaded: Arc<AtomicUsize>,
    listing: Listing,
}

impl TestStore {
    /// A store in `dir` that writes normally and lists as the sled store does.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self::over(Arc::new(SledStore::open(dir)?)))
    }

    /// `inner` seen through this store's hooks.
    pub fn over(inner: Arc<SledStore>) -> Self {
        Self { inner, writes_left: AtomicI64::new(-1), loaded: Arc::default(), listing: Listing::Sled }
    }

    /// The same, listing as `listing` says.
    pub fn listing(mut self, listing: Listing) -> Self {
        self.listing = listing;
        self
    }

    /// From now on, list as `listing` says.
    pub fn set_listing(&mut self, listing: Listing) {
        self.listing = listing;
    }

    /// From now on, `n` more writes succeed and every later one fails.
    pub fn fail_writes_after(&self, n: i64) {
        self.writes_left.store(n.max(0), Ordering::SeqCst);
    }

    /// Writes work again.
    pub fn heal(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
    }

    /// Documents loaded since the last call (one by one or a page at a time).
    pub fn take_loaded(&self) -> usize {
        self.loaded.swap(0, Ordering::Relaxed)
    }

    fn write(&self) -> Result<(), StoreError> {
        let left =
            self.writes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(if n > 0 { n - 1 } else { n }));
        match left {
            Ok(0) => Err(StoreError::Unwritable(INJECTED.into())),
            _ => Ok(()),
        }
    }

    fn count_loaded(&self, n: usize) {
        self.loaded.fetch_add(n, Ordering::Relaxed);
    }

    fn trait_defaults(&self) -> TraitDefaults {
        TraitDefaults { inner: self.inner.clone(), loaded: self.loaded.clone() }
    }
}

/// Forwards every method a [`Store`] must have to `self.$inner`, calling
/// `self.$write()?` before each write and `self.$loaded(n)` for each `n`
/// documents loaded.
macro_rules! forward_required {
    ($inner:ident, $write:ident, $loaded:ident) => {
        fn put_territory(&self, t: &Territory) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.put_territory(t)
        }
        fn territories(&self) -> Result<Vec<Territory>, StoreError> {
            self.$inner.territories()
        }
        fn put_person(&self, p: &Person) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.put_person(p)
        }
        fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
            self.$inner.person(id)
        }
        fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError> {
            self.$inner.person_by_username(username)
        }
        fn people(&self) -> Result<Vec<Person>, StoreError> {
            self.$inner.people()
        }
        fn put_device(&self, d: &Device) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.put_device(d)
        }
        fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
            self.$inner.device(id)
        }
        fn devices(&self) -> Result<Vec<Device>, StoreError> {
            self.$inner.devices()
        }
        fn person_disabled_at(&self, person: PersonId) -> Result<Option<i64>, StoreError> {
            self.$inner.person_disabled_at(person)
        }
        fn set_person_disabled(&self, person: PersonId, at: Option<i64>) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.set_person_disabled(person, at)
        }
        fn device_grace(&self, device: DeviceId) -> Result<Vec<TerritoryPath>, StoreError> {
            self.$inner.device_grace(device)
        }
        fn set_device_grace(&self, device: DeviceId, territories: &[TerritoryPath]) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.set_device_grace(device, territories)
        }
        fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
            self.$loaded(1);
            self.$inner.load_doc(id)
        }
        fn commit_doc(&self, w: DocWrite, at: i64) -> Result<u64, StoreError> {
            self.$write()?;
            self.$inner.commit_doc(w, at)
        }
        fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError> {
            self.$inner.summary(id)
        }
        fn feed_after(&self, scope: &TerritoryPath, after: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
            self.$inner.feed_after(scope, after, limit)
        }
        fn docs_in_scope(
            &self,
            scope: &TerritoryPath,
            after: Option<DocId>,
            limit: usize,
        ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
            let page = self.$inner.docs_in_scope(scope, after, limit)?;
            self.$loaded(page.len());
            Ok(page)
        }
        fn doc_heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<automerge::ChangeHash>>, StoreError> {
            self.$inner.doc_heads_at(id, seq)
        }
        fn head_seq(&self) -> Result<u64, StoreError> {
            self.$inner.head_seq()
        }
        fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError> {
            self.$inner.seq_at(at_ms)
        }
        fn stats(&self) -> Result<StoreStats, StoreError> {
            self.$inner.stats()
        }
        fn append_audit_in(
            &self,
            territory: Option<&TerritoryPath>,
            actor: &str,
            action: &str,
            detail: &str,
            at: i64,
        ) -> Result<u64, StoreError> {
            self.$write()?;
            self.$inner.append_audit_in(territory, actor, action, detail, at)
        }
        fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
            self.$inner.audit_after(after, limit)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.flush()
        }
        fn photo(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError> {
            self.$inner.photo(hash)
        }
        fn has_photo(&self, hash: &PhotoHash) -> Result<bool, StoreError> {
            self.$inner.has_photo(hash)
        }
        fn photo_referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError> {
            self.$inner.photo_referrers(hash)
        }
        fn upload_received(&self, hash: &PhotoHash) -> Result<u64, StoreError> {
            self.$inner.upload_received(hash)
        }
        fn append_upload(&self, hash: &PhotoHash, offset: u64, bytes: &[u8]) -> Result<UploadAppend, StoreError> {
            self.$write()?;
            self.$inner.append_upload(hash, offset, bytes)
        }
        fn upload_bytes(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError> {
            self.$inner.upload_bytes(hash)
        }
        fn finish_upload(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.finish_upload(hash, mime, bytes)
        }
        fn discard_upload(&self, hash: &PhotoHash) -> Result<(), StoreError> {
            self.$write()?;
            self.$inner.discard_upload(hash)
        }
    };
}

impl Store for TestStore {
    forward_required!(inner, write, count_loaded);

    fn records_in_scope(
        &self,
        scope: &TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<RecordListing>, StoreError> {
        let row_of = |doc: &StoredDoc| -> Result<Vec<u8>, StoreError> {
            let corrupt = |e: String| StoreError::Corrupt(e);
            let am = automerge::Automerge::load(&doc.bytes).map_err(|e| corrupt(e.to_string()))?;
            Ok(encode_row(&gridsync_shared::records::read_record(&am).map_err(|e| corrupt(e.to_string()))?))
        };
        let mut out = Vec::new();
        match self.listing {
            Listing::Sled => return self.inner.records_in_scope(scope, kind, after, limit),
            Listing::FromDocuments => {
                return Store::records_in_scope(&self.trait_defaults(), scope, kind, after, limit);
            }
            Listing::RowsFromDocuments | Listing::DamagedRows => {
                for (id, doc) in self.inner.docs_in_scope(scope, after, usize::MAX)? {
                    if doc.kind != kind || out.len() >= limit {
                        continue;
                    }
                    let row = match self.listing {
                        Listing::RowsFromDocuments => row_of(&doc)?,
                        _ => vec![1, 1, 0xff, 0xfe],
                    };
                    out.push(RecordListing { id, seq: doc.seq, row: Some(row) });
                }
            }
        }
        Ok(out)
    }

    fn record_counts_by_grid(
        &self,
        scope: &TerritoryPath,
    ) -> Result<Vec<(TerritoryPath, RecordKind, u64)>, StoreError> {
        match self.listing {
            Listing::FromDocuments => Store::record_counts_by_grid(&self.trait_defaults(), scope),
            _ => self.inner.record_counts_by_grid(scope),
        }
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match self.writes_left.load(Ordering::SeqCst) {
            0 => Err(StoreError::Unwritable(INJECTED.into())),
            _ => self.inner.check_writable(),
        }
    }
}

/// A [`TestStore`]'s sled store seen through the [`Store`] trait's required
/// methods only, counting into the same counter: its listings and counts are
/// the trait's defaults (as another engine would start).
struct TraitDefaults {
    inner: Arc<SledStore>,
    loaded: Arc<AtomicUsize>,
}

impl TraitDefaults {
    fn no_hook(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn count_loaded(&self, n: usize) {
        self.loaded.fetch_add(n, Ordering::Relaxed);
    }
}

impl Store for TraitDefaults {
    forward_required!(inner, no_hook, count_loaded);
}
