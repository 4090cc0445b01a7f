//! City imports in the sled store: the
//! household key index `hk/<sha256>` in the main tree (written in a commit's
//! batch, so a household and its key are kept together), and import runs,
//! their one-time secrets and each administrator's import device in trees of
//! their own. New prefixes and trees only: older stores open unchanged.

use super::*;

/// The household key index's prefix in the main tree.
pub(super) const KEYS: &[u8] = b"hk/";
/// Import runs: `<created_at be><id>` → JSON; and `<id>` → the first key, in `import_run_ids`.
const RUNS: &str = "import_runs";
const RUN_IDS: &str = "import_run_ids";
/// One-time secrets (initial passwords) of import runs, by run id.
const SECRETS: &str = "import_secrets";
/// Each administrator's import device, by person id.
const DEVICES: &str = "import_devices";

impl SledStore {
    pub(super) fn household_key_entry(&self, k: &[u8; 32]) -> Result<Option<HouseholdKeyEntry>, StoreError> {
        get(&*self.db()?, &key(KEYS, &[k]))
    }

    fn import_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db()?.open_tree(name).map_err(engine)
    }

    pub(super) fn import_run_put(&self, id: &str, created_at: i64, run: &[u8]) -> Result<(), StoreError> {
        let runs = self.import_tree(RUNS)?;
        let ids = self.import_tree(RUN_IDS)?;
        let k = key(&created_at.to_be_bytes(), &[id.as_bytes()]);
        self.write_op(|_| {
            runs.insert(&k, run).map_err(unwritable)?;
            ids.insert(id.as_bytes(), k.as_slice()).map_err(unwritable)?;
            runs.flush().map_err(unwritable)?;
            ids.flush().map_err(unwritable)?;
            Ok(())
        })
    }

    pub(super) fn import_run_get(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(k) = self.import_tree(RUN_IDS)?.get(id.as_bytes()).map_err(engine)? else { return Ok(None) };
        Ok(self.import_tree(RUNS)?.get(k).map_err(engine)?.map(|v| v.to_vec()))
    }

    pub(super) fn import_runs_newest(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.import_tree(RUNS)?.iter().rev().take(limit).map(|kv| Ok(kv.map_err(engine)?.1.to_vec())).collect()
    }

    pub(super) fn import_secret_put(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let t = self.import_tree(SECRETS)?;
        self.write_op(|_| {
            t.insert(id.as_bytes(), bytes).map_err(unwritable)?;
            t.flush().map_err(unwritable)?;
            Ok(())
        })
    }

    pub(super) fn import_secret_take(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.import_tree(SECRETS)?;
        self.write_op(|_| {
            let v = t.remove(id.as_bytes()).map_err(unwritable)?;
            t.flush().map_err(unwritable)?;
            Ok(v.map(|v| v.to_vec()))
        })
    }

    pub(super) fn import_device_get(&self, person: PersonId) -> Result<Option<DeviceId>, StoreError> {
        let v = self.import_tree(DEVICES)?.get(person.as_bytes()).map_err(engine)?;
        v.map(|v| {
            let b: [u8; 16] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt("import device".into()))?;
            Ok(DeviceId::from_bytes(b))
        })
        .transpose()
    }

    pub(super) fn import_device_set(&self, person: PersonId, device: DeviceId) -> Result<(), StoreError> {
        let t = self.import_tree(DEVICES)?;
        self.write_op(|_| {
            t.insert(person.as_bytes(), device.as_bytes().as_slice()).map_err(unwritable)?;
            t.flush().map_err(unwritable)?;
            Ok(())
        })
    }
}
