//! When each device was last seen, in the sled store: `ds/<device>` → Unix ms
//! (8 bytes big-endian) in the main tree. A new prefix only: stores made
//! before it open unchanged and answer "never seen".

use super::*;

/// The prefix of the last-seen entries.
const SEEN: &[u8] = b"ds/";

impl SledStore {
    pub(super) fn note_device_seen_impl(&self, device: DeviceId, at: i64) -> Result<(), StoreError> {
        let k = key(SEEN, &[device.as_bytes()]);
        self.write_op(|db| {
            db.insert(k, &at.to_be_bytes()).map_err(unwritable)?;
            Ok(())
        })
    }

    pub(super) fn device_seen_impl(&self, device: DeviceId) -> Result<Option<i64>, StoreError> {
        match self.db()?.get(key(SEEN, &[device.as_bytes()])).map_err(engine)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] =
                    v.as_ref().try_into().map_err(|_| StoreError::Corrupt("device last seen".into()))?;
                Ok(Some(i64::from_be_bytes(bytes)))
            }
        }
    }
}
