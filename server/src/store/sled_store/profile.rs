//! Where a sled store's bytes go: keys and bytes under each key prefix, for
//! benchmarks and for an operator wondering what fills a data directory.

use super::*;

/// The keys under one prefix of the store's main tree (`r/`, `c/`, `f/`...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrefixBytes {
    /// The key prefix, up to and including its first `/`.
    pub prefix: String,
    /// Keys under it.
    pub keys: u64,
    /// Bytes of those keys.
    pub key_bytes: u64,
    /// Bytes of their values (as stored: packed changes and rows count packed).
    pub value_bytes: u64,
}

impl SledStore {
    /// Keys and bytes under each key prefix of the main tree, in prefix
    /// order. Reads every key: minutes at a million records, no writes.
    pub fn bytes_by_prefix(&self) -> Result<Vec<PrefixBytes>, StoreError> {
        let db = self.db()?;
        let mut out: Vec<PrefixBytes> = Vec::new();
        for kv in db.iter() {
            let (k, v) = kv.map_err(engine)?;
            let end = k.iter().position(|b| *b == b'/').map_or(k.len(), |i| i + 1);
            let prefix = String::from_utf8_lossy(&k[..end.min(8)]).into_owned();
            if out.last().is_none_or(|p| p.prefix != prefix) {
                out.push(PrefixBytes { prefix, ..Default::default() });
            }
            if let Some(p) = out.last_mut() {
                p.keys += 1;
                p.key_bytes += k.len() as u64;
                p.value_bytes += v.len() as u64;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_counted_under_its_prefix() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let db = store.db().expect("db");
        db.insert(b"zz/1", b"abc".to_vec()).expect("insert");
        db.insert(b"zz/22", b"de".to_vec()).expect("insert");
        drop(db);
        let zz = store.bytes_by_prefix().expect("profile").into_iter().find(|p| p.prefix == "zz/").expect("zz/");
        assert_eq!(zz, PrefixBytes { prefix: "zz/".into(), keys: 2, key_bytes: 9, value_bytes: 5 });
    }
}
