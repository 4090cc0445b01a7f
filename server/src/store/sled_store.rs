//! The default store: sled, embedded, one tree with prefixed keys so that each
//! commit is one atomic batch.
//!
//! Keys: `d/<doc>` document, `f/<seq>` feed entry, `i/<territory>\0<seq>` feed
//! index under every territory above the grid, `g/<territory>\0<doc>` documents
//! by territory, `h/<doc><seq>` heads after each change, `s/<doc>` summary, `p/`, `u/`, `v/`, `t/`
//! people, usernames, devices and territories, `a/<seq>` audit log, `m/*` counters.

use super::*;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Mutex;

/// A store in a sled database directory.
pub struct SledStore {
    db: sled::Db,
    /// Serialises writers so sequence numbers become visible in order.
    write: Mutex<()>,
}

fn engine(e: sled::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn scope_key(prefix: &[u8], scope: &TerritoryPath) -> Vec<u8> {
    key(prefix, &[scope.as_str().as_bytes(), b"\0"])
}

const SEQ: &[u8] = b"m/seq";
/// sled's in-process page cache.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
const AUDIT_SEQ: &[u8] = b"m/audit";

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. Fails with `Locked` if a
    /// running server holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        // sled's page cache defaults to 1 GiB; a bounded cache keeps the server's
        // memory predictable (the OS page cache still holds hot data).
        let db = sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open().map_err(|e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            other => engine(other),
        })?;
        Ok(Self { db, write: Mutex::new(()) })
    }

    fn counter(&self, k: &[u8]) -> Result<u64, StoreError> {
        Ok(match self.db.get(k).map_err(engine)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("counter".into()))?),
            None => 0,
        })
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        self.db.get(k).map_err(engine)?.map(|v| dec(&v)).transpose()
    }

    fn all<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.db.scan_prefix(prefix).map(|kv| dec(&kv.map_err(engine)?.1)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for SledStore {
    fn put_territory(&self, t: &Territory) -> Result<(), StoreError> {
        self.db.insert(key(b"t/", &[t.path.as_str().as_bytes()]), enc(t)?).map_err(engine)?;
        Ok(())
    }

    fn territories(&self) -> Result<Vec<Territory>, StoreError> {
        self.all(b"t/")
    }

    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        let _w = self.lock();
        let ukey = key(b"u/", &[p.username.as_bytes()]);
        if let Some(existing) = self.db.get(&ukey).map_err(engine)?
            && existing.as_ref() != p.id.as_bytes()
        {
            return Err(StoreError::Conflict(format!("username {:?}", p.username)));
        }
        let mut b = sled::Batch::default();
        b.insert(key(b"p/", &[p.id.as_bytes()]), enc(p)?);
        b.insert(ukey, p.id.as_bytes().to_vec());
        self.db.apply_batch(b).map_err(engine)
    }

    fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        self.get(&key(b"p/", &[id.as_bytes()]))
    }

    fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError> {
        match self.db.get(key(b"u/", &[username.as_bytes()])).map_err(engine)? {
            None => Ok(None),
            Some(id) => self.get(&key(b"p/", &[&id])),
        }
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        self.all(b"p/")
    }

    fn put_device(&self, d: &Device) -> Result<(), StoreError> {
        self.db.insert(key(b"v/", &[d.id.as_bytes()]), enc(d)?).map_err(engine)?;
        Ok(())
    }

    fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        self.get(&key(b"v/", &[id.as_bytes()]))
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.all(b"v/")
    }

    fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.get(&key(b"d/", &[id.as_bytes()]))
    }

    fn commit_doc(&self, w: DocWrite, at: i64) -> Result<u64, StoreError> {
        let _w = self.lock();
        let seq = self.counter(SEQ)? + 1;
        let seq_be = seq.to_be_bytes();
        let at = match self.db.get_lt(b"g/").map_err(engine)? {
            // Keep feed time non-decreasing even if the clock steps back.
            Some((k, v)) if k.starts_with(b"f/") => at.max(dec::<FeedEntry>(&v)?.at),
            _ => at,
        };
        let new_doc = self.db.get(key(b"d/", &[w.doc.as_bytes()])).map_err(engine)?.is_none();
        let mut b = sled::Batch::default();
        b.insert(SEQ, seq_be.to_vec());
        b.insert(
            key(b"d/", &[w.doc.as_bytes()]),
            enc(&StoredDoc { grid: w.grid.clone(), kind: w.summary.kind, seq, bytes: w.bytes })?,
        );
        b.insert(key(b"s/", &[w.doc.as_bytes()]), enc(&w.summary)?);
        let heads: Vec<[u8; 32]> = w.heads.iter().map(|h| h.0).collect();
        b.insert(key(b"h/", &[w.doc.as_bytes(), &seq_be]), enc(&heads)?);
        for scope in w.grid.ancestors_and_self() {
            let mut v = w.doc.as_bytes().to_vec();
            v.extend_from_slice(w.device.as_bytes());
            b.insert(key(&scope_key(b"i/", &scope), &[&seq_be]), v);
            if new_doc {
                b.insert(key(&scope_key(b"g/", &scope), &[w.doc.as_bytes()]), Vec::new());
            }
        }
        let entry = FeedEntry { seq, at, doc: w.doc, grid: w.grid, device: w.device, changes: w.changes };
        b.insert(key(b"f/", &[&seq_be]), enc(&entry)?);
        self.db.apply_batch(b).map_err(engine)?;
        Ok(seq)
    }

    fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError> {
        self.get(&key(b"s/", &[id.as_bytes()]))
    }

    fn feed_after(&self, scope: &TerritoryPath, after: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let prefix = scope_key(b"i/", scope);
        let start = key(&prefix, &[&(after.saturating_add(1)).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in self.db.range(start..) {
            let (k, _) = kv.map_err(engine)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let seq_be = &k[prefix.len()..];
            if let Some(e) = self.get::<FeedEntry>(&key(b"f/", &[seq_be]))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn docs_in_scope(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        let prefix = scope_key(b"g/", scope);
        let start = match after {
            Some(id) => {
                let mut k = key(&prefix, &[id.as_bytes()]);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for kv in self.db.range(start..) {
            let (k, _) = kv.map_err(engine)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let id: [u8; 16] = k[prefix.len()..].try_into().map_err(|_| StoreError::Corrupt("doc index".into()))?;
            let id = DocId::from_bytes(id);
            if let Some(doc) = self.load_doc(id)? {
                out.push((id, doc));
            }
        }
        Ok(out)
    }

    fn doc_heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        let prefix = key(b"h/", &[id.as_bytes()]);
        let upto = key(&prefix, &[&seq.to_be_bytes()]);
        match self.db.range(prefix.clone()..=upto).next_back() {
            None => Ok(None),
            Some(kv) => {
                let heads: Vec<[u8; 32]> = dec(&kv.map_err(engine)?.1)?;
                Ok(Some(heads.into_iter().map(ChangeHash).collect()))
            }
        }
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        self.counter(SEQ)
    }

    fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError> {
        // Binary search over the feed: entry times are non-decreasing in seq.
        let (mut lo, mut hi) = (0u64, self.head_seq()?);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let at = match self.get::<FeedEntry>(&key(b"f/", &[&mid.to_be_bytes()]))? {
                Some(e) => e.at,
                None => return Err(StoreError::Corrupt(format!("feed entry {mid} missing"))),
            };
            if at <= at_ms { lo = mid } else { hi = mid - 1 }
        }
        Ok(lo)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats { head_seq: self.head_seq()?, disk_bytes: self.db.size_on_disk().map_err(engine)? })
    }

    fn append_audit(&self, actor: &str, action: &str, detail: &str, at: i64) -> Result<u64, StoreError> {
        let _w = self.lock();
        let seq = self.counter(AUDIT_SEQ)? + 1;
        let entry = AuditEntry { seq, at, actor: actor.into(), action: action.into(), detail: detail.into() };
        let mut b = sled::Batch::default();
        b.insert(AUDIT_SEQ, seq.to_be_bytes().to_vec());
        b.insert(key(b"a/", &[&seq.to_be_bytes()]), enc(&entry)?);
        self.db.apply_batch(b).map_err(engine)?;
        self.db.flush().map_err(engine)?;
        Ok(seq)
    }

    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let start = key(b"a/", &[&(after + 1).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in self.db.range(start..) {
            let (k, v) = kv.map_err(engine)?;
            if !k.starts_with(b"a/") || out.len() >= limit {
                break;
            }
            out.push(dec(&v)?);
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }
}
