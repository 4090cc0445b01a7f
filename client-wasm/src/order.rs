//! Sorting without adding sort code to the phone's WebAssembly: every element
//! type sorted with `sort`/`sort_unstable` gets its own copy of the standard
//! library's sort (~1 KB brotli each), so the replica sorts by byte keys with
//! the one copy automerge already carries (its sort of change hashes).

use automerge::ChangeHash;

/// `items` ordered by `key`, lowest first (byte order; items with equal keys
/// keep their order). A key is 28 bytes: the last 4 of the 32-byte hash hold
/// the item's position.
pub(crate) fn sorted_by_key<T>(items: Vec<T>, key: impl Fn(&T) -> [u8; 28]) -> Vec<T> {
    let mut keys: Vec<ChangeHash> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut k = [0u8; 32];
            k[..28].copy_from_slice(&key(item));
            k[28..].copy_from_slice(&(i as u32).to_be_bytes());
            ChangeHash(k)
        })
        .collect();
    keys.sort_unstable();
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    keys.iter()
        .filter_map(|k| {
            let i = u32::from_be_bytes([k.0[28], k.0[29], k.0[30], k.0[31]]) as usize;
            slots.get_mut(i).and_then(Option::take)
        })
        .collect()
}

/// A key's first 8 bytes for a signed number: byte order is numeric order.
pub(crate) fn i64_key(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64, tag: u8) -> [u8; 28] {
        let mut k = [0u8; 28];
        k[..8].copy_from_slice(&i64_key(n));
        k[8] = tag;
        k
    }

    #[test]
    fn orders_like_a_sort_of_numbers_then_bytes() {
        let items: Vec<(i64, u8)> =
            vec![(5, 1), (-3, 9), (i64::MIN, 0), (5, 0), (0, 2), (i64::MAX, 7), (-1, 3), (0, 1)];
        let mut expected = items.clone();
        expected.sort();
        assert_eq!(sorted_by_key(items, |&(n, t)| key(n, t)), expected);
    }

    #[test]
    fn equal_keys_keep_their_order() {
        let items = vec![("b", 1), ("a", 0), ("c", 1), ("d", 0)];
        let sorted = sorted_by_key(items, |&(_, n)| key(n, 0));
        assert_eq!(sorted, vec![("a", 0), ("d", 0), ("b", 1), ("c", 1)]);
    }
}
