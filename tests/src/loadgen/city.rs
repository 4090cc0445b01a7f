//! A city for the load generator: grids under communities, one grid manager
//! per phone, devices registered straight into a fresh sled store, then the real
//! `gridsync-server` binary started on it over loopback.

use super::LoadError;
use crate::phone::Phone;
use crate::process::{ServerProcess, free_port};
use gridsync_server::admin::add_territory;
use gridsync_server::auth::{hash_password, register_device};
use gridsync_server::store::{Person, SledStore, Store};
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::{PersonId, Role, TerritoryPath};
use std::path::{Path, PathBuf};

/// Grids per community, as in a typical 社区.
const GRIDS_PER_COMMUNITY: usize = 10;

/// A running server with its grids and one signed-in phone per grid manager.
pub struct City {
    /// The server process.
    pub server: ServerProcess,
    /// Every grid, in order.
    pub grids: Vec<TerritoryPath>,
    /// The phones; phone `i` works in grid `i % grids.len()`.
    pub phones: Vec<Phone>,
    _dir: tempfile::TempDir,
}

fn path(s: &str) -> Result<TerritoryPath, LoadError> {
    s.parse().map_err(|e| LoadError::Setup(format!("territory {s}: {e}")))
}

impl City {
    /// Builds a city of `grids` grids and `phones` grid managers, and starts
    /// `server_binary` on it. `data_dir` keeps the store (else a temporary one).
    pub async fn build(
        server_binary: &Path,
        phones: usize,
        grids: usize,
        data_dir: Option<&Path>,
    ) -> Result<City, LoadError> {
        Self::build_filled(server_binary, phones, grids, data_dir, |_, _, _| Ok(())).await
    }

    /// Like [`Self::build`], letting `fill` write records into the store
    /// before the server starts on it.
    pub async fn build_filled(
        server_binary: &Path,
        phones: usize,
        grids: usize,
        data_dir: Option<&Path>,
        fill: impl FnOnce(&SledStore, &[TerritoryPath], &[DeviceRegistration]) -> Result<(), LoadError>,
    ) -> Result<City, LoadError> {
        if phones == 0 || grids == 0 {
            return Err(LoadError::Setup("need at least one phone and one grid".into()));
        }
        let dir = tempfile::tempdir().map_err(|e| LoadError::Setup(e.to_string()))?;
        let data: PathBuf = data_dir.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("data"));
        let store = SledStore::open(&data).map_err(|e| LoadError::Setup(e.to_string()))?;
        let (grid_paths, registrations) = Self::register(&store, phones, grids)?;
        fill(&store, &grid_paths, &registrations)?;
        store.flush().map_err(|e| LoadError::Setup(e.to_string()))?;
        drop(store);
        let port = free_port();
        let server = ServerProcess::start_binary(server_binary, &data, port, &[], None).await;
        let phones = registrations
            .into_iter()
            .map(|reg| Phone::registered(&server.url, reg))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::Setup(e.to_string()))?;
        Ok(City { server, grids: grid_paths, phones, _dir: dir })
    }

    /// Writes territories, people and devices into the store.
    fn register(
        store: &SledStore,
        phones: usize,
        grids: usize,
    ) -> Result<(Vec<TerritoryPath>, Vec<DeviceRegistration>), LoadError> {
        let setup = |e: gridsync_server::error::ApiError| LoadError::Setup(e.to_string());
        for (p, name) in [("lc", "临川市"), ("lc/d1", "城区"), ("lc/d1/s1", "中心街道")] {
            add_territory(store, &path(p)?, name).map_err(setup)?;
        }
        let mut grid_paths = Vec::with_capacity(grids);
        for g in 0..grids {
            let community = format!("lc/d1/s1/c{:03}", g / GRIDS_PER_COMMUNITY);
            if g % GRIDS_PER_COMMUNITY == 0 {
                add_territory(store, &path(&community)?, &format!("第{}社区", g / GRIDS_PER_COMMUNITY + 1))
                    .map_err(setup)?;
            }
            let grid = path(&format!("{community}/g{:02}", g % GRIDS_PER_COMMUNITY))?;
            add_territory(store, &grid, &format!("第{}网格", g + 1)).map_err(setup)?;
            grid_paths.push(grid);
        }
        // One password hash for everybody: argon2 per person would dominate setup.
        let hash = hash_password("loadgen-password").map_err(setup)?;
        let now = crate::now_ms();
        let mut registrations = Vec::with_capacity(phones);
        for i in 0..phones {
            let person = Person {
                id: PersonId(uuid::Uuid::new_v4()),
                username: format!("wgy{i:05}"),
                name: format!("网格员{i}"),
                role: Role::FieldStaff,
                territory: grid_paths[i % grids].clone(),
                password_hash: hash.clone(),
                created_at: now,
            };
            store.put_person(&person).map_err(|e| LoadError::Setup(e.to_string()))?;
            registrations.push(register_device(store, &person, "压测手机", now).map_err(setup)?);
        }
        Ok((grid_paths, registrations))
    }

    /// How many phones work in the grid of phone `i`.
    pub fn phones_in_grid_of(&self, i: usize) -> usize {
        let g = self.grids.len();
        let grid = i % g;
        self.phones.len() / g + usize::from(grid < self.phones.len() % g)
    }
}
