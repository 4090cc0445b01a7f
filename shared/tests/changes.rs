//! A change taken through `parse_change` can always be loaded into a
//! document: damaged bytes that Automerge's parser accepts (a wrong checksum)
//! are refused before anything stores them.

use automerge::transaction::Transactable;
use gridsync_shared::protocol::{ChangeError, parse_change};
use proptest::prelude::*;

/// A change as a phone sends it: setting a few fields, Chinese text included.
fn a_change(n: u8) -> Vec<u8> {
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "type", "visit_log").expect("put");
    doc.put(automerge::ROOT, "notes", format!("走访第{n}户，了解用水用电情况")).expect("put");
    doc.put(automerge::ROOT, "n", i64::from(n)).expect("put");
    doc.get_changes(&[]).first().map(|c| c.raw_bytes().to_vec()).expect("a change")
}

#[test]
fn a_change_with_a_wrong_checksum_is_refused() {
    let mut bytes = a_change(1);
    bytes[5] ^= 0x5a;
    assert!(automerge::Change::from_bytes(bytes.clone()).is_ok(), "Automerge's parser alone accepts it");
    assert!(automerge::Automerge::load(&bytes).is_err(), "and no document holding it loads");
    assert_eq!(parse_change(bytes).err(), Some(ChangeError::BadChecksum));
}

#[test]
fn a_change_as_written_is_accepted_with_its_hash() {
    let bytes = a_change(2);
    let change = parse_change(bytes.clone()).expect("a whole change");
    assert_eq!(change.raw_bytes(), &bytes[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever byte of a change is damaged, either `parse_change` refuses it
    /// or a document made of it loads.
    #[test]
    fn any_damaged_change_is_refused_or_loads(n in 0u8..8, at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut bytes = a_change(n);
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok(change) = parse_change(bytes) {
            let loaded = automerge::Automerge::load(change.raw_bytes());
            prop_assert!(loaded.is_ok(), "accepted byte {i} ^ {xor:#x} but no document loads: {:?}", loaded.err());
        }
    }
}
