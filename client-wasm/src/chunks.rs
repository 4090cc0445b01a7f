//! A cheap integrity check of Automerge bytes received from the server: every
//! chunk's framing and SHA-256 checksum, without decoding its operations, so
//! received records can be kept unparsed yet never stored damaged.

use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types Automerge writes: document, change, compressed change, bundle.
const TYPES: std::ops::RangeInclusive<u8> = 0..=3;

/// Checks that `bytes` is one or more whole Automerge chunks with valid
/// checksums; the error says what is wrong.
pub(crate) fn check(mut bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("no Automerge data".into());
    }
    while !bytes.is_empty() {
        let rest = bytes.strip_prefix(&MAGIC).ok_or("not an Automerge chunk")?;
        let (checksum, rest) = rest.split_at_checked(4).ok_or("truncated chunk header")?;
        let (&kind, rest) = rest.split_first().ok_or("truncated chunk header")?;
        if !TYPES.contains(&kind) {
            return Err(format!("unknown chunk type {kind}"));
        }
        let (len, len_bytes) = uleb128(rest).ok_or("bad chunk length")?;
        let data = rest.get(len_bytes..len_bytes + len).ok_or("truncated chunk")?;
        let mut hasher = Sha256::new();
        hasher.update([kind]);
        hasher.update(&rest[..len_bytes]);
        hasher.update(data);
        if hasher.finalize()[..4] != *checksum {
            return Err("chunk checksum mismatch".into());
        }
        bytes = &rest[len_bytes + len..];
    }
    Ok(())
}

/// An unsigned LEB128 number and how many bytes it took.
fn uleb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn doc() -> automerge::AutoCommit {
        let mut d = automerge::AutoCommit::new();
        d.put(automerge::ROOT, "notes", "入户走访，老人身体良好。").expect("put");
        d
    }

    #[test]
    fn saved_documents_and_changes_pass_and_any_flipped_byte_fails() {
        let mut d = doc();
        let saved = d.save();
        let change = d.get_changes(&[]).first().expect("change").raw_bytes().to_vec();
        let mut both = saved.clone();
        both.extend_from_slice(&change);
        for good in [&saved, &change, &both] {
            assert_eq!(check(good), Ok(()));
        }
        for i in 0..change.len() {
            let mut bad = change.clone();
            bad[i] ^= 0x01;
            assert!(check(&bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert!(check(&change[..change.len() - 1]).is_err());
        assert!(check(&[]).is_err());
    }
}
