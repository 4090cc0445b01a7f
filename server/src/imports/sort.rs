//! An external sort for an import's rows: byte records are gathered in memory
//! up to a bound, each full buffer is sorted and written as a run file in a
//! temporary directory, and the runs are merged in order. Memory stays flat for
//! any file size; the disk is only written and read sequentially.

use super::ImportError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Buffer size of each run's reader and writer.
const IO_BUFFER: usize = 128 * 1024;

fn io(e: std::io::Error) -> ImportError {
    ImportError::Internal(format!("temporary file: {e}"))
}

/// Records in, records out in byte order (duplicates kept).
pub(super) struct Sorter {
    dir: PathBuf,
    name: &'static str,
    limit: usize,
    arena: Vec<u8>,
    /// (start, length) of each record in `arena`.
    index: Vec<(usize, usize)>,
    runs: Vec<PathBuf>,
}

impl Sorter {
    /// A sorter writing its runs as `<dir>/<name>-<n>`, holding at most about
    /// `limit` bytes of records in memory. `dir` must outlive the sorter's merge.
    pub(super) fn new(dir: &Path, name: &'static str, limit: usize) -> Self {
        Self { dir: dir.to_path_buf(), name, limit, arena: Vec::new(), index: Vec::new(), runs: Vec::new() }
    }

    /// Adds one record.
    pub(super) fn push(&mut self, record: &[u8]) -> Result<(), ImportError> {
        if !self.index.is_empty() && self.arena.len() + record.len() > self.limit {
            self.write_run()?;
        }
        self.index.push((self.arena.len(), record.len()));
        self.arena.extend_from_slice(record);
        Ok(())
    }

    fn write_run(&mut self) -> Result<(), ImportError> {
        let arena = &self.arena;
        self.index.sort_unstable_by(|&(a, al), &(b, bl)| arena[a..a + al].cmp(&arena[b..b + bl]));
        let path = self.dir.join(format!("{}-{}", self.name, self.runs.len()));
        let mut w = BufWriter::with_capacity(IO_BUFFER, File::create(&path).map_err(io)?);
        for &(start, len) in &self.index {
            let len32 = u32::try_from(len).map_err(|_| ImportError::Internal("record too long".into()))?;
            w.write_all(&len32.to_le_bytes()).map_err(io)?;
            w.write_all(&arena[start..start + len]).map_err(io)?;
        }
        w.flush().map_err(io)?;
        self.runs.push(path);
        self.arena.clear();
        self.index.clear();
        Ok(())
    }

    /// Every record pushed, in byte order.
    pub(super) fn finish(mut self) -> Result<Merged, ImportError> {
        if !self.index.is_empty() {
            self.write_run()?;
        }
        // The buffer is not needed while merging.
        self.arena = Vec::new();
        self.index = Vec::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::with_capacity(self.runs.len());
        for (i, path) in self.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(IO_BUFFER, File::open(path).map_err(io)?);
            if let Some(first) = read_record(&mut r)? {
                heap.push(Reverse((first, i)));
            }
            readers.push(r);
        }
        Ok(Merged { readers, heap })
    }
}

/// One record of a run, or None at its end.
fn read_record(r: &mut impl Read) -> Result<Option<Vec<u8>>, ImportError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let mut record = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut record).map_err(io)?;
    Ok(Some(record))
}

/// The runs of a [`Sorter`], merged: the records in byte order.
pub(super) struct Merged {
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Merged {
    /// The next record, or None when all are read.
    pub(super) fn next_record(&mut self) -> Result<Option<Vec<u8>>, ImportError> {
        let Some(Reverse((record, run))) = self.heap.pop() else { return Ok(None) };
        if let Some(next) = read_record(&mut self.readers[run])? {
            self.heap.push(Reverse((next, run)));
        }
        Ok(Some(record))
    }
}

/// A sequential file of length-prefixed records, read back in the order written.
pub(super) struct Spool {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl Spool {
    /// A new spool at `path`.
    pub(super) fn create(path: PathBuf) -> Result<Self, ImportError> {
        let writer = BufWriter::with_capacity(IO_BUFFER, File::create(&path).map_err(io)?);
        Ok(Self { path, writer })
    }

    /// Appends one record.
    pub(super) fn push(&mut self, record: &[u8]) -> Result<(), ImportError> {
        let len = u32::try_from(record.len()).map_err(|_| ImportError::Internal("record too long".into()))?;
        self.writer.write_all(&len.to_le_bytes()).map_err(io)?;
        self.writer.write_all(record).map_err(io)?;
        Ok(())
    }

    /// Calls `f` with each record in the order appended.
    pub(super) fn for_each(mut self, f: &mut dyn FnMut(Vec<u8>) -> Result<(), ImportError>) -> Result<(), ImportError> {
        self.writer.flush().map_err(io)?;
        drop(self.writer);
        let mut r = BufReader::with_capacity(IO_BUFFER, File::open(&self.path).map_err(io)?);
        while let Some(record) = read_record(&mut r)? {
            f(record)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_into_byte_order_with_duplicates_kept() {
        let dir = tempfile::tempdir().expect("dir");
        // A limit of 64 bytes: many runs.
        let mut s = Sorter::new(dir.path(), "t", 64);
        let mut expected = Vec::new();
        for i in 0..500u32 {
            let r = format!("{:05}-{}", (i * 7919) % 613, i % 3).into_bytes();
            s.push(&r).expect("push");
            expected.push(r);
        }
        s.push(&expected[0].clone()).expect("push");
        expected.push(expected[0].clone());
        expected.sort();
        let mut m = s.finish().expect("finish");
        let mut got = Vec::new();
        while let Some(r) = m.next_record().expect("next") {
            got.push(r);
        }
        assert_eq!(got, expected);
        assert!(std::fs::read_dir(dir.path()).expect("dir").count() > 10, "it spilled to runs");
    }

    #[test]
    fn an_empty_sorter_and_spool_yield_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let mut m = Sorter::new(dir.path(), "t", 64).finish().expect("finish");
        assert_eq!(m.next_record().expect("next"), None);
        let spool = Spool::create(dir.path().join("s")).expect("spool");
        spool.for_each(&mut |_| panic!("no record")).expect("read");
    }

    #[test]
    fn a_spool_reads_back_in_the_order_written() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::create(dir.path().join("s")).expect("spool");
        let records: Vec<Vec<u8>> = (0..1000u32).map(|i| vec![(i % 251) as u8; (i % 17) as usize]).collect();
        for r in &records {
            spool.push(r).expect("push");
        }
        let mut got = Vec::new();
        spool
            .for_each(&mut |r| {
                got.push(r);
                Ok(())
            })
            .expect("read");
        assert_eq!(got, records);
    }
}
