//! A streaming zip writer whose memory does not grow with the number of entries.
//!
//! The `zip` crate keeps every entry's central-directory record in memory until
//! the archive is finished (a few hundred bytes per entry), which for a bundle
//! of a whole city's records is hundreds of megabytes. This writer sends each
//! entry out as it is written (local header, deflated data, data descriptor:
//! the output never seeks) and spools its central-directory record to a
//! [`SpooledTempFile`] (in memory up to 1 MiB, then an unnamed temporary file),
//! copied out at the end. The layout follows PKWARE's APPNOTE 6.3 as the `zip`
//! crate writes it: UTF-8 names (flag bit 11), deflate, data descriptors (bit 3),
//! ZIP64 extra fields for entries that may pass 4 GiB, and ZIP64 end records when
//! there are 65,535 entries or more or the archive passes 4 GiB.
//!
//! An entry's bytes are deflated in blocks of 64 KiB, each on its own (no
//! back-references into the block before, as `pigz --independent` does), so
//! an entry of more than one block is deflated on one thread per core while
//! the caller goes on writing it; the compressed bytes depend only on the
//! entry's bytes, never on the threads or on how the writer split them.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use tempfile::SpooledTempFile;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
const ZIP64_EXTRA: u16 = 0x0001;
/// Data descriptor follows the data (bit 3); names are UTF-8 (bit 11).
const FLAGS: u16 = 0x0008 | 0x0800;
const DEFLATE: u16 = 8;
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made on Unix (3), by a writer of APPNOTE version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// A regular file, mode 0644.
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;
const U32_LIMIT: u64 = 0xFFFF_FFFF;
const U16_LIMIT: u64 = 0xFFFF;
/// Central-directory bytes kept in memory before they spill to a temporary file.
const SPOOL_IN_MEMORY: usize = 1 << 20;

/// What an entry held: its uncompressed size and SHA-256 (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EntryDigest {
    /// Uncompressed bytes.
    pub size: u64,
    /// SHA-256 of the uncompressed bytes, lowercase hex.
    pub sha256: String,
}

/// Counts the bytes that pass, so every header knows its offset.
struct Position<W: Write> {
    inner: W,
    at: u64,
}

impl<W: Write> Write for Position<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes (SHA-256, CRC-32) and counts the uncompressed bytes on their way into the deflater.
struct Digesting<W: Write> {
    inner: W,
    crc: Crc,
    sha: Sha256,
    size: u64,
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The size of the blocks an entry is deflated in, each on its own.
const BLOCK: usize = 64 * 1024;

/// A block deflated: the block and the buffer holding its deflated bytes,
/// both handed back to be used again.
type Deflated = io::Result<(Vec<u8>, Vec<u8>)>;

/// A block to deflate, a buffer for its deflated bytes, and where both go
/// once it is deflated.
type BlockJob = (Vec<u8>, Vec<u8>, SyncSender<Deflated>);

/// Room for a block's deflated bytes: deflate may grow incompressible bytes
/// by a few bytes per 16 KiB.
const DEFLATED_ROOM: usize = BLOCK + BLOCK / 16 + 64;

/// Deflates `input` on its own into raw deflate data with `z` (reset first):
/// with [`FlushCompress::Sync`] for a block that more follow (ending on a byte
/// boundary, not final), [`FlushCompress::Finish`] for the last block.
fn deflate_block(z: &mut Compress, input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) -> io::Result<()> {
    z.reset();
    out.clear();
    out.reserve(input.len() + input.len() / 16 + 64);
    loop {
        let consumed = usize::try_from(z.total_in()).map_err(io::Error::other)?;
        let rest = input.get(consumed..).unwrap_or_default();
        let status = z.compress_vec(rest, out, flush).map_err(io::Error::other)?;
        let all_in = usize::try_from(z.total_in()).map_err(io::Error::other)? == input.len();
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A flush is complete once it returns with output space left.
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// An entry's bytes on their way out, deflated in blocks of exactly [`BLOCK`]
/// bytes (the last one shorter), each on its own: every full block on a
/// compressor thread (started with the entry's first full block, one per
/// core, in `scope`), written out in order; the last block here. An entry
/// of less than a block starts no thread. Blocks and their deflated bytes
/// go back and forth in the same few buffers, so the compressors allocate
/// nothing per block.
struct BlockDeflate<'scope, 'env, O: Write> {
    out: O,
    level: Compression,
    block: Vec<u8>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    jobs: Option<Sender<BlockJob>>,
    /// Blocks handed to the compressors, oldest first.
    in_flight: VecDeque<Receiver<Deflated>>,
    /// Buffers written out, to be used again.
    spare: Vec<Vec<u8>>,
    /// Blocks in flight at most before the oldest is waited for.
    max_in_flight: usize,
}

impl<'scope, 'env, O: Write> BlockDeflate<'scope, 'env, O> {
    fn new(out: O, level: Compression, scope: &'scope std::thread::Scope<'scope, 'env>) -> Self {
        Self {
            out,
            level,
            block: Vec::with_capacity(BLOCK),
            scope,
            jobs: None,
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            max_in_flight: 0,
        }
    }

    /// The compressors' job queue, starting them on first use.
    fn jobs(&mut self) -> &Sender<BlockJob> {
        self.jobs.get_or_insert_with(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.max_in_flight = 2 * threads + 2;
            let (jobs, queue) = channel::<BlockJob>();
            let queue = Arc::new(Mutex::new(queue));
            for _ in 0..threads {
                let queue = Arc::clone(&queue);
                let level = self.level;
                self.scope.spawn(move || {
                    let mut z = Compress::new(level, false);
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok((block, mut deflated, done)) = job else { return };
                        let result = deflate_block(&mut z, &block, FlushCompress::Sync, &mut deflated);
                        let _ = done.send(result.map(|()| (block, deflated)));
                    }
                });
            }
            jobs
        })
    }

    /// Writes out the oldest block in flight.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(result) = self.in_flight.pop_front() {
            let (block, deflated) = result.recv().map_err(|_| io::Error::other("a compressor thread failed"))??;
            self.out.write_all(&deflated)?;
            self.spare.extend([block, deflated]);
        }
        Ok(())
    }

    /// Hands the full block to the compressors.
    fn hand_on(&mut self) -> io::Result<()> {
        let mut next = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK));
        next.clear();
        let block = std::mem::replace(&mut self.block, next);
        let deflated = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(DEFLATED_ROOM));
        let (done, result) = sync_channel(1);
        self.jobs().send((block, deflated, done)).map_err(|_| io::Error::other("the compressor threads ended"))?;
        self.in_flight.push_back(result);
        while self.in_flight.len() > self.max_in_flight {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Writes out every block and the last one, and returns the output.
    fn finish(mut self) -> io::Result<O> {
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        let mut last = self.spare.pop().unwrap_or_default();
        deflate_block(&mut Compress::new(self.level, false), &self.block, FlushCompress::Finish, &mut last)?;
        self.out.write_all(&last)?;
        Ok(self.out)
    }
}

impl<O: Write> Write for BlockDeflate<'_, '_, O> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.hand_on()?;
        }
        Ok(n)
    }

    /// Blocks are only deflated whole: a flush from the entry's writer
    /// must not change the compressed bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A zip archive being written to a non-seekable output.
pub(super) struct ZipStream<W: Write> {
    out: Position<BufWriter<W>>,
    central: BufWriter<SpooledTempFile>,
    entries: u64,
    dos_time: u16,
    dos_date: u16,
}

/// The MS-DOS time and date fields of a local time, clamped to the years 1980-2107 they can hold.
pub(super) fn dos_time_date(t: &super::LocalTime) -> (u16, u16) {
    if t.year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if t.year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = (u16::from(t.hour) << 11) | (u16::from(t.minute) << 5) | (u16::from(t.second) / 2);
    // The year is within 1980..=2107 here, so it fits the 7 bits it gets.
    let date = (((t.year - 1980) as u16) << 9) | (u16::from(t.month) << 5) | u16::from(t.day);
    (time, date)
}

fn le16(out: &mut impl Write, v: u16) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn le32(out: &mut impl Write, v: u32) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn le64(out: &mut impl Write, v: u64) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

/// A 32-bit field, or its ZIP64 marker when the value needs the extra field.
fn field32(v: u64) -> u32 {
    u32::try_from(v).ok().filter(|v| u64::from(*v) < U32_LIMIT).unwrap_or(u32::MAX)
}

fn name_len(name: &str) -> io::Result<u16> {
    u16::try_from(name.len()).map_err(|_| io::Error::other(format!("zip entry name too long: {name}")))
}

impl<W: Write> ZipStream<W> {
    /// An empty archive on `out`, whose entries will say they were modified at `modified` (local time).
    pub(super) fn new(out: W, modified: &super::LocalTime) -> Self {
        let (dos_time, dos_date) = dos_time_date(modified);
        Self {
            out: Position { inner: BufWriter::with_capacity(64 * 1024, out), at: 0 },
            central: BufWriter::with_capacity(64 * 1024, SpooledTempFile::new(SPOOL_IN_MEMORY)),
            entries: 0,
            dos_time,
            dos_date,
        }
    }

    /// Writes one deflated entry named `name` with the bytes `body` writes.
    /// `large` allows the entry to pass 4 GiB (ZIP64 sizes from the start, as
    /// streaming readers need to know before the data). Returns its size and SHA-256.
    pub(super) fn entry<E: From<io::Error>>(
        &mut self,
        name: &str,
        large: bool,
        body: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<EntryDigest, E> {
        self.entry_compressed(name, large, Compression::default(), body)
    }

    /// [`ZipStream::entry`] at a chosen deflate level: `Compression::none()`
    /// for bytes that are already compressed (photos), which deflate then
    /// only frames in stored blocks, at copying speed.
    pub(super) fn entry_compressed<E: From<io::Error>>(
        &mut self,
        name: &str,
        large: bool,
        level: Compression,
        body: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<EntryDigest, E> {
        let offset = self.out.at;
        let len = name_len(name)?;
        let out = &mut self.out;
        le32(out, LOCAL_HEADER)?;
        le16(out, if large { VERSION_ZIP64 } else { VERSION_DEFAULT })?;
        le16(out, FLAGS)?;
        le16(out, DEFLATE)?;
        le16(out, self.dos_time)?;
        le16(out, self.dos_date)?;
        le32(out, 0)?; // CRC-32 and sizes: in the data descriptor (bit 3)
        le32(out, 0)?;
        le32(out, 0)?;
        le16(out, len)?;
        le16(out, if large { 20 } else { 0 })?;
        out.write_all(name.as_bytes())?;
        if large {
            le16(out, ZIP64_EXTRA)?;
            le16(out, 16)?;
            le64(out, 0)?;
            le64(out, 0)?;
        }
        let data_start = out.at;
        let (crc, sha, size) = std::thread::scope(|scope| {
            let mut digesting = Digesting {
                inner: BlockDeflate::new(&mut self.out, level, scope),
                crc: Crc::new(),
                sha: Sha256::new(),
                size: 0,
            };
            body(&mut digesting)?;
            let Digesting { inner, crc, sha, size } = digesting;
            inner.finish()?;
            Ok::<_, E>((crc.sum(), sha, size))
        })?;
        let compressed = self.out.at - data_start;
        if !large && (size >= U32_LIMIT || compressed >= U32_LIMIT) {
            return Err(io::Error::other(format!("zip entry {name} passed 4 GiB without ZIP64")).into());
        }
        let out = &mut self.out;
        le32(out, DATA_DESCRIPTOR)?;
        le32(out, crc)?;
        if large {
            le64(out, compressed)?;
            le64(out, size)?;
        } else {
            le32(out, field32(compressed))?;
            le32(out, field32(size))?;
        }
        self.central_record(name, len, large, crc, compressed, size, offset)?;
        self.entries += 1;
        Ok(EntryDigest { size, sha256: hex::encode(sha.finalize()) })
    }

    #[allow(clippy::too_many_arguments)]
    fn central_record(
        &mut self,
        name: &str,
        len: u16,
        large: bool,
        crc: u32,
        compressed: u64,
        size: u64,
        offset: u64,
    ) -> io::Result<()> {
        let sizes64 = large || size >= U32_LIMIT || compressed >= U32_LIMIT;
        let offset64 = offset >= U32_LIMIT;
        let extra_len: u16 =
            if sizes64 || offset64 { 4 + 16 * u16::from(sizes64) + 8 * u16::from(offset64) } else { 0 };
        let c = &mut self.central;
        le32(c, CENTRAL_HEADER)?;
        le16(c, MADE_BY)?;
        le16(c, if extra_len > 0 { VERSION_ZIP64 } else { VERSION_DEFAULT })?;
        le16(c, FLAGS)?;
        le16(c, DEFLATE)?;
        le16(c, self.dos_time)?;
        le16(c, self.dos_date)?;
        le32(c, crc)?;
        le32(c, if sizes64 { u32::MAX } else { field32(compressed) })?;
        le32(c, if sizes64 { u32::MAX } else { field32(size) })?;
        le16(c, len)?;
        le16(c, extra_len)?;
        le16(c, 0)?; // comment
        le16(c, 0)?; // disk
        le16(c, 0)?; // internal attributes
        le32(c, EXTERNAL_ATTRIBUTES)?;
        le32(c, if offset64 { u32::MAX } else { field32(offset) })?;
        c.write_all(name.as_bytes())?;
        if extra_len > 0 {
            le16(c, ZIP64_EXTRA)?;
            le16(c, extra_len - 4)?;
            if sizes64 {
                le64(c, size)?;
                le64(c, compressed)?;
            }
            if offset64 {
                le64(c, offset)?;
            }
        }
        Ok(())
    }

    /// Writes the central directory and the end records, and flushes the output.
    pub(super) fn finish(self) -> io::Result<()> {
        let Self { mut out, central, entries, .. } = self;
        let mut central = central.into_inner().map_err(|e| e.into_error())?;
        let cd_start = out.at;
        central.seek(SeekFrom::Start(0))?;
        io::copy(&mut central, &mut out)?;
        let cd_size = out.at - cd_start;
        let zip64 = entries >= U16_LIMIT || cd_size >= U32_LIMIT || cd_start >= U32_LIMIT;
        if zip64 {
            let end64 = out.at;
            le32(&mut out, ZIP64_END)?;
            le64(&mut out, 44)?; // size of the rest of this record
            le16(&mut out, MADE_BY)?;
            le16(&mut out, VERSION_ZIP64)?;
            le32(&mut out, 0)?; // this disk
            le32(&mut out, 0)?; // disk of the central directory
            le64(&mut out, entries)?;
            le64(&mut out, entries)?;
            le64(&mut out, cd_size)?;
            le64(&mut out, cd_start)?;
            le32(&mut out, ZIP64_LOCATOR)?;
            le32(&mut out, 0)?;
            le64(&mut out, end64)?;
            le32(&mut out, 1)?; // disks in total
        }
        let count16 = u16::try_from(entries).ok().filter(|n| u64::from(*n) < U16_LIMIT).unwrap_or(u16::MAX);
        le32(&mut out, END)?;
        le16(&mut out, 0)?;
        le16(&mut out, 0)?;
        le16(&mut out, count16)?;
        le16(&mut out, count16)?;
        le32(&mut out, field32(cd_size))?;
        le32(&mut out, field32(cd_start))?;
        le16(&mut out, 0)?; // comment
        let mut inner = out.inner.into_inner().map_err(|e| e.into_error())?;
        inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn read_all(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip archive");
        (0..zip.len())
            .map(|i| {
                let mut e = zip.by_index(i).expect("entry");
                let mut data = Vec::new();
                e.read_to_end(&mut data).expect("data");
                (e.name().expect("name").into_owned(), data)
            })
            .collect()
    }

    fn t() -> super::super::LocalTime {
        super::super::LocalTime::from_unix_ms(1_700_000_000_000)
    }

    #[test]
    fn entries_read_back_with_the_zip_crate_and_digests_match() {
        let mut bytes = Vec::new();
        let mut zip = ZipStream::new(&mut bytes, &t());
        let a = zip.entry::<io::Error>("a.txt", false, |w| w.write_all("住户,地址\r\n".as_bytes())).expect("a");
        let b = zip.entry::<io::Error>("big/b.csv", true, |w| w.write_all(&[7u8; 100_000])).expect("b");
        zip.entry::<io::Error>("empty", false, |_| Ok(())).expect("empty");
        zip.finish().expect("finish");
        assert_eq!(a.size, "住户,地址\r\n".len() as u64);
        assert_eq!(a.sha256, hex::encode(Sha256::digest("住户,地址\r\n".as_bytes())));
        assert_eq!(b.size, 100_000);
        let all = read_all(&bytes);
        assert_eq!(all[0], ("a.txt".to_string(), "住户,地址\r\n".as_bytes().to_vec()));
        assert_eq!(all[1], ("big/b.csv".to_string(), vec![7u8; 100_000]));
        assert_eq!(all[2], ("empty".to_string(), Vec::new()));
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).expect("zip");
        let modified = archive.by_index(0).ok().and_then(|e| e.last_modified()).expect("time");
        assert_eq!((modified.year(), modified.month(), modified.day(), modified.hour()), (2023, 11, 15, 6));
    }

    #[test]
    fn an_entry_has_the_same_bytes_however_its_writer_splits_and_flushes_it() {
        // Compressible but not trivial: text with repeats at many distances.
        let body: Vec<u8> = (0..300_000u32).flat_map(|i| format!("{},{};", i % 977, i % 13).into_bytes()).collect();
        let archive = |pieces: &[usize]| {
            let mut bytes = Vec::new();
            let mut zip = ZipStream::new(&mut bytes, &t());
            zip.entry::<io::Error>("book.xlsx", true, |w| {
                let (mut at, mut i) = (0, 0);
                while at < body.len() {
                    let end = (at + pieces[i % pieces.len()]).min(body.len());
                    w.write_all(&body[at..end])?;
                    w.flush()?;
                    at = end;
                    i += 1;
                }
                Ok(())
            })
            .expect("entry");
            zip.finish().expect("finish");
            bytes
        };
        let whole = archive(&[body.len()]);
        assert_eq!(read_all(&whole)[0].1, body);
        for pieces in [&[8192][..], &[1, 65_536, 7, 4095], &[65_537, 3000, 123_457]] {
            assert!(archive(pieces) == whole, "split in pieces of {pieces:?}: other bytes");
        }
    }

    #[test]
    fn an_entry_of_many_blocks_deflated_on_every_core_reads_back_in_order() {
        // About 18 blocks of varied text: more than are ever in flight at once.
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{};", i.wrapping_mul(2_654_435_761) % 100_003).into_bytes())
            .collect();
        assert!(body.len() > 12 * BLOCK);
        let mut bytes = Vec::new();
        let mut zip = ZipStream::new(&mut bytes, &t());
        let digest = zip.entry::<io::Error>("visit_logs.csv", true, |w| w.write_all(&body)).expect("entry");
        zip.entry::<io::Error>("one_block_exactly", false, |w| w.write_all(&body[..BLOCK])).expect("entry");
        zip.finish().expect("finish");
        assert_eq!(digest.sha256, hex::encode(Sha256::digest(&body)));
        let all = read_all(&bytes);
        assert!(all[0].1 == body, "the entry reads back as written");
        assert!(all[1].1 == body[..BLOCK], "an entry of exactly one block reads back");
        assert!(bytes.len() < body.len() * 3 / 4, "deflated: {} bytes of {}", bytes.len(), body.len());
    }

    #[test]
    fn seventy_thousand_entries_get_zip64_end_records_and_read_back() {
        let mut bytes = Vec::new();
        let mut zip = ZipStream::new(&mut bytes, &t());
        for i in 0..70_000u32 {
            zip.entry::<io::Error>(&format!("records/{i}"), false, |w| w.write_all(&i.to_le_bytes())).expect("entry");
        }
        zip.finish().expect("finish");
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).expect("zip64 archive");
        assert_eq!(archive.len(), 70_000);
        let mut last = Vec::new();
        archive.by_name("records/69999").expect("last").read_to_end(&mut last).expect("read");
        assert_eq!(last, 69_999u32.to_le_bytes());
    }

    #[test]
    fn dos_times_clamp_to_the_years_they_can_hold() {
        let before = super::super::LocalTime::from_unix_ms(0);
        assert_eq!(dos_time_date(&before), (0, (1 << 5) | 1));
        let (time, date) = dos_time_date(&t());
        assert_eq!((date >> 9, (date >> 5) & 0xF, date & 0x1F), (43, 11, 15));
        assert_eq!((time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2), (6, 13, 20));
    }
}
