//! When each device was last seen, in the sled store: `ds/<device>` → Unix ms
//! (8 bytes big-endian), then the changes it held unsent (8 bytes, all ones
//! for "did not say"; absent in entries written before it was kept). A new
//! prefix only: stores made before it open unchanged and answer "never seen".

use super::*;

/// The prefix of the last-seen entries.
const SEEN: &[u8] = b"ds/";
/// `pending` when the device did not say.
const UNKNOWN: u64 = u64::MAX;

impl SledStore {
    pub(super) fn note_device_seen_impl(&self, device: DeviceId, seen: DeviceSeen) -> Result<(), StoreError> {
        let k = key(SEEN, &[device.as_bytes()]);
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&seen.at.to_be_bytes());
        v[8..].copy_from_slice(&seen.pending.unwrap_or(UNKNOWN).to_be_bytes());
        self.write_op(|db| {
            db.insert(k, &v).map_err(unwritable)?;
            Ok(())
        })
    }

    pub(super) fn device_seen_impl(&self, device: DeviceId) -> Result<Option<DeviceSeen>, StoreError> {
        let Some(v) = self.db()?.get(key(SEEN, &[device.as_bytes()])).map_err(engine)? else { return Ok(None) };
        let corrupt = || StoreError::Corrupt("device last seen".into());
        let at: [u8; 8] = v.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
        let pending = match v.get(8..) {
            Some([]) => None,
            Some(b) => Some(u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?)).filter(|&p| p != UNKNOWN),
            None => return Err(corrupt()),
        };
        Ok(Some(DeviceSeen { at: i64::from_be_bytes(at), pending }))
    }
}
