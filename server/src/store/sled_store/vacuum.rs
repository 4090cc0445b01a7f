//! Vacuum: a stopped store rewritten into a new data directory in large
//! batches. sled 0.34 never gives back the space that small commits leave free
//! in its file (about half of it after a day of syncs); a fresh copy written in
//! large batches holds the same keys and values in about half the bytes. The
//! copy is the same store (same epoch, feed and cursors: phones notice nothing);
//! the original directory is left as it was, for the operator to swap.
//!
//! The copy is written beside the target (`<target>.vacuum-partial`) and takes
//! the target's name only once checked, so a vacuum killed part way never
//! leaves a partial store where a server could be started on it.

use super::backup::tree_named;
use super::*;

/// Entries per batch written into the copy.
const BATCH_ENTRIES: usize = 10_000;
/// Bytes per batch written into the copy.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// The environment variable that sets the entries per batch (tests: many
/// batches, so that a kill lands between two).
const BATCH_VAR: &str = "GRIDSYNC_VACUUM_BATCH";
/// What the copy is called until it is checked.
const PARTIAL: &str = ".vacuum-partial";

/// What a vacuum did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vacuumed {
    /// Keys copied, every tree together.
    pub entries: u64,
    /// The original's files, bytes.
    pub bytes_before: u64,
    /// The copy's files, bytes.
    pub bytes_after: u64,
}

/// Why a vacuum did not happen.
#[derive(Debug, thiserror::Error)]
pub enum VacuumError {
    /// The target directory holds something.
    #[error("{0} is not empty: vacuum only into an empty or absent directory (nothing was changed)")]
    NotEmpty(String),
    /// The source and the target are one directory.
    #[error("vacuum into another directory than the store's own (nothing was changed)")]
    SameDirectory,
    /// The source is not a store.
    #[error("{0} holds no gridsync store (nothing was changed)")]
    NoStore(String),
    /// The target names no directory that could be made (a root, `..`).
    #[error("{0} is not a directory a copy can be written to (nothing was changed)")]
    Target(String),
    /// The copy differs from the original: a bug or a failing disk; the copy is removed.
    #[error(
        "the copy differs from the original in tree {tree} at key {key}; the copy was removed, the original is unchanged"
    )]
    Differs {
        /// The tree.
        tree: String,
        /// The key, hex.
        key: String,
    },
    /// The store could not be read or the copy written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SledStore {
    /// Rewrites the stopped store in `from` into `into` (empty or absent), then
    /// reads both back and checks they hold the same keys and values in every
    /// tree. `progress` hears the entries copied so far. The copy gets the name
    /// `into` only once checked; on any error it is removed, and a copy left
    /// by a vacuum killed part way is removed by the next. `from` is never
    /// written.
    pub fn vacuum(from: &Path, into: &Path, progress: &mut dyn FnMut(u64)) -> Result<Vacuumed, VacuumError> {
        if !from.join("conf").exists() {
            return Err(VacuumError::NoStore(from.display().to_string()));
        }
        if let (Ok(a), Ok(b)) = (from.canonicalize(), into.canonicalize())
            && a == b
        {
            return Err(VacuumError::SameDirectory);
        }
        if std::fs::read_dir(into).is_ok_and(|mut d| d.next().is_some()) {
            return Err(VacuumError::NotEmpty(into.display().to_string()));
        }
        let partial = match into.file_name() {
            Some(name) => {
                let mut name = name.to_os_string();
                name.push(PARTIAL);
                into.with_file_name(name)
            }
            None => return Err(VacuumError::Target(into.display().to_string())),
        };
        let source = open_db(from)?;
        if partial.exists() {
            // Only a vacuum killed part way leaves this name behind.
            std::fs::remove_dir_all(&partial).map_err(|e| unwritable_io(&partial, e))?;
        }
        let result = copy_and_check(&source, &partial, progress).and_then(|entries| {
            // Closed for good before it is handed over: the caller may open it at once.
            super::wait_until_closed(&partial, CLOSE_WITHIN)?;
            // The checked copy takes the target's name in one step (an empty
            // target directory is replaced).
            std::fs::rename(&partial, into).map_err(|e| unwritable_io(into, e))?;
            if let Some(parent) = into.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| unwritable_io(parent, e))?;
            }
            Ok(entries)
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        drop(source);
        let entries = result?;
        super::wait_until_closed(from, CLOSE_WITHIN)?;
        // Both sizes as the file system counts them (sled's own estimate differs).
        Ok(Vacuumed { entries, bytes_before: dir_size(from), bytes_after: dir_size(into) })
    }
}

fn unwritable_io(path: &Path, e: std::io::Error) -> VacuumError {
    VacuumError::Store(StoreError::Unwritable(format!("{}: {e}", path.display())))
}

/// How long sled may take to let go of the copy once it is dropped.
const CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Entries per batch: [`BATCH_ENTRIES`], or what [`BATCH_VAR`] says.
fn batch_entries() -> usize {
    std::env::var(BATCH_VAR).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(BATCH_ENTRIES)
}

fn copy_and_check(source: &sled::Db, into: &Path, progress: &mut dyn FnMut(u64)) -> Result<u64, VacuumError> {
    // A new store: sled's page compression off, as for every new store.
    let copy = open_db(into)?;
    let batch_entries = batch_entries();
    let mut entries = 0u64;
    for name in source.tree_names() {
        let from = tree_named(source, &name)?;
        let to = tree_named(&copy, &name)?;
        let (mut batch, mut n, mut bytes) = (sled::Batch::default(), 0usize, 0usize);
        for kv in from.iter() {
            let (k, v) = kv.map_err(engine)?;
            bytes += k.len() + v.len();
            batch.insert(k, v);
            n += 1;
            entries += 1;
            if n >= batch_entries || bytes >= BATCH_BYTES {
                to.apply_batch(std::mem::take(&mut batch)).map_err(unwritable)?;
                (n, bytes) = (0, 0);
                progress(entries);
            }
        }
        to.apply_batch(batch).map_err(unwritable)?;
        progress(entries);
    }
    copy.flush().map_err(unwritable)?;
    // Read back: every tree of either holds the same keys and values.
    let mut names = source.tree_names();
    names.extend(copy.tree_names());
    names.sort();
    names.dedup();
    for name in names {
        let (a, b) = (tree_named(source, &name)?, tree_named(&copy, &name)?);
        let mut left = a.iter();
        let mut right = b.iter();
        loop {
            match (left.next().transpose().map_err(engine)?, right.next().transpose().map_err(engine)?) {
                (None, None) => break,
                (Some((ka, va)), Some((kb, vb))) if ka == kb && va == vb => {}
                (l, r) => {
                    let key = l.or(r).map(|(k, _)| hex::encode(k)).unwrap_or_default();
                    return Err(VacuumError::Differs { tree: String::from_utf8_lossy(&name).into_owned(), key });
                }
            }
        }
    }
    Ok(entries)
}

/// Bytes of the files in `dir`, its subdirectories included.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in `dir` holding records committed one at a time, a person and a photo tree.
    fn store_of_small_commits(dir: &Path, records: u8) -> SledStore {
        let store = SledStore::open(dir).expect("open");
        for i in 0..records {
            let write = DocWrite {
                doc: DocId::from_bytes([i; 16]),
                grid: format!("a/b/c/d/g{}", i % 3).parse().expect("grid"),
                summary: gridsync_shared::records::RecordSummary { kind: RecordKind::VisitLog, household: None, at: 1 },
                bytes: vec![i; 900],
                heads: Vec::new(),
                device: DeviceId::from_bytes([1; 16]),
                changes: Vec::new(),
                photos: Vec::new(),
                row: Some(vec![i; 300]),
            };
            store.commit_doc(write, 1).expect("commit");
        }
        store.db().expect("db").open_tree(b"photos").expect("tree").insert(b"p", b"jpeg".as_slice()).expect("insert");
        store.flush().expect("flush");
        store
    }

    /// Every tree's keys and values of the store in `dir`, which is then closed.
    fn everything(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let db = open_db(dir).expect("open");
        let mut names = db.tree_names();
        names.sort();
        let all = names
            .into_iter()
            .flat_map(|n| {
                let tree = tree_named(&db, &n).expect("tree");
                tree.iter().map(move |kv| {
                    let (k, v) = kv.expect("kv");
                    (n.to_vec(), k.to_vec(), v.to_vec())
                })
            })
            .collect();
        drop(db);
        super::super::wait_until_closed(dir, std::time::Duration::from_secs(30)).expect("closed");
        all
    }

    #[test]
    fn a_vacuumed_store_holds_every_key_and_value_of_every_tree_and_reads_the_same() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (from, into) = (tmp.path().join("data"), tmp.path().join("data.vacuumed"));
        let store = store_of_small_commits(&from, 200);
        let feed = store.feed_after(&"a".parse().expect("scope"), 0, 1000).expect("feed");
        drop(store);
        super::super::wait_until_closed(&from, std::time::Duration::from_secs(30)).expect("closed");
        let before = everything(&from);
        let mut heard = 0;
        let done = SledStore::vacuum(&from, &into, &mut |n| heard = n).expect("vacuum");
        assert_eq!(done.entries, before.len() as u64);
        assert_eq!(heard, done.entries);
        assert_eq!(everything(&into), before, "the copy holds exactly the original's trees, keys and values");
        assert_eq!(everything(&from), before, "the original is unchanged");
        let copy = SledStore::open(&into).expect("the copy opens as a store");
        assert_eq!(copy.feed_after(&"a".parse().expect("scope"), 0, 1000).expect("feed"), feed);
    }

    #[test]
    fn a_store_reads_as_closed_only_once_sled_has_let_go_of_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("data");
        let store = store_of_small_commits(&dir, 3);
        let short = std::time::Duration::from_millis(50);
        assert!(matches!(super::super::wait_until_closed(&dir, short), Err(StoreError::Locked(_))));
        drop(store);
        super::super::wait_until_closed(&dir, std::time::Duration::from_secs(30)).expect("closed");
        drop(SledStore::open(&dir).expect("opens again at once"));
        assert!(super::super::wait_until_closed(&tmp.path().join("nothing"), short).is_ok(), "no store, nothing held");
    }

    #[test]
    fn a_vacuum_refuses_a_target_that_holds_something_or_a_running_store() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (from, into) = (tmp.path().join("data"), tmp.path().join("busy"));
        let store = store_of_small_commits(&from, 3);
        std::fs::create_dir_all(&into).expect("dir");
        std::fs::write(into.join("keep.txt"), b"mine").expect("write");
        assert!(matches!(SledStore::vacuum(&from, &into, &mut |_| {}), Err(VacuumError::NotEmpty(_))));
        assert_eq!(std::fs::read(into.join("keep.txt")).expect("kept"), b"mine");
        let empty = tmp.path().join("empty");
        assert!(
            matches!(SledStore::vacuum(&from, &empty, &mut |_| {}), Err(VacuumError::Store(StoreError::Locked(_)))),
            "a store a server holds open is refused"
        );
        drop(store);
        assert!(matches!(SledStore::vacuum(&from, &from, &mut |_| {}), Err(VacuumError::SameDirectory)));
        assert!(matches!(
            SledStore::vacuum(&tmp.path().join("nothing"), &empty, &mut |_| {}),
            Err(VacuumError::NoStore(_))
        ));
    }

    #[test]
    fn a_copy_left_by_a_killed_vacuum_never_bears_the_targets_name_and_the_next_vacuum_replaces_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (from, into) = (tmp.path().join("data"), tmp.path().join("data.vacuumed"));
        drop(store_of_small_commits(&from, 50));
        let before = everything(&from);
        // What a vacuum killed part way leaves: half a copy, beside the target.
        let partial = tmp.path().join("data.vacuumed.vacuum-partial");
        {
            let half = open_db(&partial).expect("open");
            half.insert(b"r/half-copied", b"x".as_slice()).expect("insert");
            half.flush().expect("flush");
        }
        assert!(!into.exists(), "no store under the target's name");
        SledStore::vacuum(&from, &into, &mut |_| {}).expect("vacuum");
        assert!(!partial.exists(), "the leftover is gone");
        assert_eq!(everything(&into), before, "the copy is the original's, nothing of the leftover");
        // An empty target directory is replaced by the copy.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("dir");
        SledStore::vacuum(&from, &empty, &mut |_| {}).expect("vacuum into an empty directory");
        assert_eq!(everything(&empty), before);
        assert!(matches!(SledStore::vacuum(&from, Path::new("/"), &mut |_| {}), Err(VacuumError::NotEmpty(_))));
    }
}
