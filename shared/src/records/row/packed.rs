//! Rows kept against their commit's changes. A server keeps a record's row
//! beside the changes of the commit that made it, and most of a row (a visit
//! log's note, a case's description) is text those changes already hold. So
//! the store keeps the row deflated with the changes as deflate's preset
//! dictionary ([`pack`]): a loadgen visit log's row shrinks from ≈1.2 KB to
//! ≈0.1 KB. A row kept so is readable only with those changes: a store hands
//! it out joined with them ([`with_changes`]), which [`super::decode_row`] reads.
//!
//! Forms (the first byte is the row encoding version, as for every row):
//! - at rest: `[AT_REST][kind][zlib stream of the fields' JSON, preset
//!   dictionary = the changes]`: the stream names its dictionary by its
//!   Adler-32, so a row is never read against changes it was not packed with;
//! - handed out: `[WITH_CHANGES][kind][count][len, change]…[the deflate above]`,
//!   count and lengths as LEB128, each change as the store keeps it: as
//!   Automerge wrote it, or a zlib stream of it (first byte `0x78`).
//!
//! The dictionary is the changes laid end to end as Automerge wrote them,
//! its last 32 KiB (all deflate can refer to).

use super::{LEVEL, ROW_VERSION, RowError, byte_kind};
use crate::records::RecordKind;
use flate2::read::ZlibDecoder;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io::Read;

/// The version byte of a row at rest, packed against its commit's changes.
pub const AT_REST: u8 = 2;
/// The version byte of a packed row joined with its changes.
pub const WITH_CHANGES: u8 = 3;
/// Deflate looks back at most this far: only the dictionary's tail counts.
const WINDOW: usize = 32 * 1024;
/// First byte of a zlib stream (deflate, 32 KiB window).
const ZLIB: u8 = 0x78;

/// The row `row` (as [`super::encode_row`] made it) packed against `changes`
/// (the commit's changes as Automerge wrote them), or None when that is not
/// smaller or `row` is not such a row.
pub fn pack(row: &[u8], changes: &[&[u8]]) -> Option<Vec<u8>> {
    thread_local! {
        /// This thread's inflater and deflater, reset for each row: setting
        /// one up (allocating and clearing its tables) costs more than a row.
        static CODERS: std::cell::RefCell<(Decompress, Option<(u8, Compress)>)> =
            std::cell::RefCell::new((Decompress::new(false), None));
    }
    let (&version, rest) = row.split_first()?;
    let (&kind, deflated) = rest.split_first()?;
    if version != ROW_VERSION || changes.is_empty() {
        return None;
    }
    CODERS.with(|cell| {
        let mut coders = cell.try_borrow_mut().ok()?;
        let (inflater, deflater) = &mut *coders;
        inflater.reset(false);
        let json = run_inflate(inflater, deflated, &[]).ok()?;
        let dictionary = dictionary(changes.iter().map(|c| std::borrow::Cow::Borrowed(*c)));
        // The smallest window reaching from the row's end back to the
        // dictionary's start: less state to clear. Any window reads back (the
        // stream names its own).
        let reach = dictionary.len() + json.len();
        let bits = (9..15).find(|b| 1usize << b >= reach).unwrap_or(15);
        let z = match deflater {
            Some((b, z)) if *b == bits => {
                z.reset();
                z
            }
            _ => &mut deflater.insert((bits, Compress::new_with_window_bits(Compression::new(LEVEL), true, bits))).1,
        };
        z.set_dictionary(&dictionary).ok()?;
        let mut out = Vec::with_capacity(row.len());
        out.extend_from_slice(&[AT_REST, kind]);
        loop {
            if out.len() >= row.len() {
                return None; // not smaller: keep the row as it is
            }
            out.reserve(256);
            let consumed = usize::try_from(z.total_in()).ok()?;
            match z.compress_vec(json.get(consumed..)?, &mut out, FlushCompress::Finish).ok()? {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {}
            }
        }
        (out.len() < row.len()).then_some(out)
    })
}

/// A row at rest joined with the changes it was packed against, as the store
/// keeps them, for [`super::decode_row`]. A row not at rest is returned as is.
pub fn with_changes(row: Vec<u8>, changes: &[&[u8]]) -> Vec<u8> {
    let Some((&AT_REST, rest)) = row.split_first() else { return row };
    let Some((&kind, deflated)) = rest.split_first() else { return row };
    let mut out = Vec::with_capacity(row.len() + changes.iter().map(|c| c.len() + 3).sum::<usize>() + 4);
    out.extend_from_slice(&[WITH_CHANGES, kind]);
    leb128(&mut out, changes.len());
    for c in changes {
        leb128(&mut out, c.len());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(deflated);
    out
}

/// The row at rest as [`super::encode_row`] made it, given the changes it was
/// packed against (as Automerge wrote them): for a store that is about to
/// drop those changes. A row not at rest is returned as is.
pub fn unpack(row: Vec<u8>, changes: &[&[u8]]) -> Result<Vec<u8>, RowError> {
    let Some((&AT_REST, rest)) = row.split_first() else { return Ok(row) };
    let (&kind, deflated) = rest.split_first().ok_or(RowError::Empty)?;
    byte_kind(kind)?;
    let dictionary = dictionary(changes.iter().map(|c| std::borrow::Cow::Borrowed(*c)));
    let json = inflate(deflated, &dictionary)?;
    let mut out = vec![ROW_VERSION, kind];
    let mut z = flate2::write::DeflateEncoder::new(&mut out, Compression::new(LEVEL));
    std::io::Write::write_all(&mut z, &json)?;
    z.finish()?;
    Ok(out)
}

/// The kind and the fields' JSON of a row joined with its changes (after its
/// version byte).
pub(super) fn fields(bytes: &[u8]) -> Result<(RecordKind, Vec<u8>), RowError> {
    let (&kind, mut rest) = bytes.split_first().ok_or(RowError::Empty)?;
    let kind = byte_kind(kind)?;
    let count = read_leb128(&mut rest)?;
    let mut changes = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = read_leb128(&mut rest)?;
        if rest.len() < len {
            return Err(RowError::Changes("cut short"));
        }
        let (change, after) = rest.split_at(len);
        changes.push(change);
        rest = after;
    }
    let unpacked = changes
        .into_iter()
        .map(|c| {
            if c.first() != Some(&ZLIB) {
                return Ok(std::borrow::Cow::Borrowed(c));
            }
            let mut out = Vec::with_capacity(c.len() * 3);
            ZlibDecoder::new(c).read_to_end(&mut out).map_err(|_| RowError::Changes("damaged"))?;
            Ok(std::borrow::Cow::Owned(out))
        })
        .collect::<Result<Vec<_>, RowError>>()?;
    let dictionary = dictionary(unpacked.into_iter());
    Ok((kind, inflate(rest, &dictionary)?))
}

/// The last [`WINDOW`] bytes of the changes laid end to end.
fn dictionary<'a>(changes: impl DoubleEndedIterator<Item = std::borrow::Cow<'a, [u8]>>) -> Vec<u8> {
    let mut tail: Vec<std::borrow::Cow<'a, [u8]>> = Vec::new();
    let mut len = 0;
    for c in changes.rev() {
        len += c.len();
        tail.push(c);
        if len >= WINDOW {
            break;
        }
    }
    let mut out = Vec::with_capacity(len.min(WINDOW));
    for c in tail.iter().rev() {
        out.extend_from_slice(c);
    }
    let cut = out.len().saturating_sub(WINDOW);
    out.drain(..cut);
    out
}

/// The zlib stream `packed`, made with `dictionary`, inflated. The stream
/// names its dictionary (Adler-32) and checks its output, so other changes or
/// damaged bytes are refused rather than misread.
fn inflate(packed: &[u8], dictionary: &[u8]) -> Result<Vec<u8>, RowError> {
    run_inflate(&mut Decompress::new(true), packed, dictionary)
}

/// All of the stream `input`, inflated by `z` (fresh or reset), given
/// `dictionary` if the stream asks for one.
fn run_inflate(z: &mut Decompress, input: &[u8], dictionary: &[u8]) -> Result<Vec<u8>, RowError> {
    const OTHERS: RowError = RowError::Changes("not the ones it was packed against");
    let mut out = Vec::with_capacity(input.len() * 8 + 256);
    let mut dictionary_set = false;
    loop {
        let consumed = usize::try_from(z.total_in()).map_err(|_| RowError::Changes("too long"))?;
        let before = (z.total_in(), z.total_out());
        match z.decompress_vec(input.get(consumed..).unwrap_or_default(), &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if out.len() == out.capacity() => out.reserve(out.capacity().max(1024)),
            Ok(_) if (z.total_in(), z.total_out()) == before => return Err(RowError::Changes("cut short")),
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() && !dictionary_set => {
                z.set_dictionary(dictionary).map_err(|_| OTHERS)?;
                dictionary_set = true;
            }
            Err(_) => return Err(OTHERS),
        }
    }
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &mut &[u8]) -> Result<usize, RowError> {
    let mut n: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(RowError::Changes("cut short"))?;
        *bytes = rest;
        n |= usize::from(b & 0x7f).checked_shl(shift).ok_or(RowError::Changes("damaged"))?;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(RowError::Changes("damaged"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::row::{decode_row, encode_row};
    use crate::records::{NewRecord, Record, VisitFields, VisitKind, new_record, read_record};
    use crate::{Author, PersonId, Role, TerritoryPath};
    use automerge::ActorId;
    use flate2::write::ZlibEncoder;
    use std::io::Write;
    use uuid::Uuid;

    /// A visit log with a note of `chars` varied Chinese characters, its row
    /// and the changes that wrote it.
    fn visit_log(chars: usize, seed: u32) -> (Record, Vec<u8>, Vec<Vec<u8>>) {
        let grid: TerritoryPath = "xg/xn/sh/dh/g1".parse().expect("grid");
        let author = Author { person: PersonId(Uuid::from_u128(1)), role: Role::FieldStaff, territory: grid.clone() };
        let note: String = (0..chars)
            .map(|i| {
                let n = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 3000;
                char::from_u32(0x4e00 + n).unwrap_or('一')
            })
            .collect();
        let visit = VisitFields {
            visited_at: 1_700_000_000_123,
            kind: Some(VisitKind::Care),
            notes: note,
            findings: "楼道灯不亮".into(),
            ..VisitFields::default()
        };
        let (_, doc) =
            new_record(ActorId::random(), &author, &grid, 1, [3; 10], &NewRecord::VisitLog(visit)).expect("visit");
        let record = read_record(&doc).expect("read");
        let changes = doc.get_changes(&[]).into_iter().map(|c| c.raw_bytes().to_vec()).collect();
        (record.clone(), encode_row(&record), changes)
    }

    fn refs(changes: &[Vec<u8>]) -> Vec<&[u8]> {
        changes.iter().map(Vec::as_slice).collect()
    }

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(bytes).expect("deflate");
        z.finish().expect("deflate")
    }

    #[test]
    fn a_visit_logs_row_kept_against_its_change_costs_a_tenth_and_reads_back_the_same() {
        let (record, row, changes) = visit_log(600, 7);
        let packed = pack(&row, &refs(&changes)).expect("smaller");
        assert!(packed.len() * 8 < row.len(), "packed {} bytes against a row of {}", packed.len(), row.len());
        assert_eq!(decode_row(&with_changes(packed.clone(), &refs(&changes))).expect("decodes"), record);
        // The changes as a store may keep them: zlib-compressed.
        let zipped: Vec<Vec<u8>> = changes.iter().map(|c| zlib(c)).collect();
        assert_eq!(zipped[0][0], ZLIB);
        assert_eq!(decode_row(&with_changes(packed.clone(), &refs(&zipped))).expect("decodes"), record);
        // And back to a plain row, for a store about to drop the changes.
        assert_eq!(unpack(packed, &refs(&changes)).expect("unpacks"), row);
    }

    #[test]
    fn a_packed_row_does_not_read_without_its_changes_or_with_others() {
        let (_, row, changes) = visit_log(600, 7);
        let (_, _, others) = visit_log(600, 8);
        let packed = pack(&row, &refs(&changes)).expect("smaller");
        assert!(matches!(decode_row(&packed), Err(RowError::Changes(_))), "at rest alone");
        assert!(decode_row(&with_changes(packed.clone(), &[])).is_err(), "no changes");
        assert!(decode_row(&with_changes(packed.clone(), &refs(&others))).is_err(), "another record's changes");
        let joined = with_changes(packed, &refs(&changes));
        for cut in [3, joined.len() / 2, joined.len() - 1] {
            assert!(decode_row(&joined[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_row_that_would_not_shrink_is_not_packed() {
        let (_, row, _) = visit_log(600, 7);
        assert_eq!(pack(&row, &[b"nothing in common".as_slice()]), None);
        assert_eq!(pack(&row, &[]), None);
        assert_eq!(pack(b"", &[b"x".as_slice()]), None);
        // A row not at rest passes through both ways unchanged.
        assert_eq!(with_changes(row.clone(), &[b"x".as_slice()]), row);
        assert_eq!(unpack(row.clone(), &[]).expect("as is"), row);
    }

    #[test]
    fn a_thread_packs_each_row_as_it_would_alone_whatever_it_packed_before() {
        let (short, short_row, short_changes) = visit_log(600, 7);
        let (long, long_row, mut long_changes) = visit_log(600, 9);
        // A dictionary past deflate's window: the largest window is used.
        long_changes.insert(0, vec![b'a'; 40_000]);
        let first = pack(&short_row, &refs(&short_changes)).expect("smaller");
        let other = pack(&long_row, &refs(&long_changes)).expect("smaller");
        assert_eq!(pack(&short_row, &refs(&short_changes)), Some(first.clone()), "the same bytes again");
        assert_eq!(decode_row(&with_changes(first, &refs(&short_changes))).expect("decodes"), short);
        assert_eq!(decode_row(&with_changes(other, &refs(&long_changes))).expect("decodes"), long);
        assert_eq!(pack(&short_row[..short_row.len() - 5], &refs(&short_changes)), None, "a damaged row is not packed");
    }
}
