//! A city for the load generator: grids under communities, one grid manager
//! per phone, devices registered straight into a fresh store (sled by default,
//! or a PostgreSQL database: see [`Deployment`]), then the real
//! `gridsync-server` binary started on it over loopback, once or several times.

use super::LoadError;
use crate::phone::Phone;
use crate::process::{ServerProcess, free_port};
use gridsync_server::admin::add_territory;
use gridsync_server::auth::{hash_password, register_device};
use gridsync_server::store::postgres::scratch::ScratchPostgres;
use gridsync_server::store::{Person, PgStore, SledStore, Store};
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::{PersonId, Role, TerritoryPath};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Grids per community, as in a typical 社区.
const GRIDS_PER_COMMUNITY: usize = 10;

/// Which store the servers run on, and how many server processes share it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    /// None: the embedded sled store; `scratch`: a throwaway PostgreSQL
    /// started for the run; else a PostgreSQL address whose database is empty.
    pub store: Option<String>,
    /// Server processes (more than one needs PostgreSQL); phone `i` talks to server `i % servers`.
    pub servers: usize,
}

static DEPLOYMENT: OnceLock<Deployment> = OnceLock::new();

impl Deployment {
    /// Sets the deployment every later [`City`] uses (the load generator's
    /// `--store` and `--servers`); false if one was set already.
    pub fn set(d: Deployment) -> bool {
        DEPLOYMENT.set(d).is_ok()
    }

    /// The deployment set by [`Deployment::set`], else one server on the
    /// store `GRIDSYNC_STORE` names (as the server reads it), else on sled.
    pub fn current() -> Deployment {
        DEPLOYMENT.get().cloned().unwrap_or_else(|| Deployment {
            store: std::env::var("GRIDSYNC_STORE").ok().filter(|s| !s.is_empty()),
            servers: 1,
        })
    }
}

/// The store a city is written into before its servers start.
enum CityStore {
    Sled(Box<SledStore>),
    Postgres { store: Box<PgStore>, url: String, empty: u64, _scratch: Option<Box<ScratchPostgres>> },
}

impl CityStore {
    fn as_store(&self) -> &dyn Store {
        match self {
            CityStore::Sled(s) => s.as_ref(),
            CityStore::Postgres { store, .. } => store.as_ref(),
        }
    }
}

/// Running servers with their grids and one signed-in phone per grid manager.
pub struct City {
    /// The first server process (the only one on sled).
    pub server: ServerProcess,
    /// Further server processes on the same PostgreSQL database.
    pub more_servers: Vec<ServerProcess>,
    /// Every grid, in order.
    pub grids: Vec<TerritoryPath>,
    /// The phones; phone `i` works in grid `i % grids.len()` and talks to server `i % servers`.
    pub phones: Vec<Phone>,
    /// The PostgreSQL store the servers share (None on sled), its size before
    /// the city was written, and its throwaway server if one was started.
    postgres: Option<(PgStore, u64, Option<Box<ScratchPostgres>>)>,
    _dir: tempfile::TempDir,
}

fn path(s: &str) -> Result<TerritoryPath, LoadError> {
    s.parse().map_err(|e| LoadError::Setup(format!("territory {s}: {e}")))
}

fn setup(e: impl std::fmt::Display) -> LoadError {
    LoadError::Setup(e.to_string())
}

impl City {
    /// Builds a city of `grids` grids and `phones` grid managers, and starts
    /// `server_binary` on it ([`Deployment::current`] says on which store and
    /// how often). `data_dir` keeps a sled store (else a temporary one).
    pub async fn build(
        server_binary: &Path,
        phones: usize,
        grids: usize,
        data_dir: Option<&Path>,
    ) -> Result<City, LoadError> {
        Self::build_filled(server_binary, phones, grids, data_dir, |_, _, _| Ok(())).await
    }

    /// Like [`Self::build`], letting `fill` write records into the store
    /// before the servers start on it.
    pub async fn build_filled(
        server_binary: &Path,
        phones: usize,
        grids: usize,
        data_dir: Option<&Path>,
        fill: impl FnOnce(&dyn Store, &[TerritoryPath], &[DeviceRegistration]) -> Result<(), LoadError>,
    ) -> Result<City, LoadError> {
        if phones == 0 || grids == 0 {
            return Err(LoadError::Setup("need at least one phone and one grid".into()));
        }
        let deployment = Deployment::current();
        let servers = deployment.servers.max(1);
        if servers > 1 && deployment.store.is_none() {
            return Err(LoadError::Setup("several servers need a PostgreSQL store (--store)".into()));
        }
        let dir = tempfile::tempdir().map_err(setup)?;
        let data: PathBuf = data_dir.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("data"));
        let city_store = match deployment.store.as_deref() {
            None => CityStore::Sled(Box::new(SledStore::open(&data).map_err(setup)?)),
            Some(given) => {
                let (url, scratch) = if given == "scratch" {
                    // On a thread of its own: its client blocks, which no runtime allows.
                    let started = std::thread::spawn(|| {
                        let pg = ScratchPostgres::start()?;
                        let url = pg.create_database()?;
                        Ok::<_, gridsync_server::store::postgres::scratch::ScratchError>((url, pg))
                    })
                    .join()
                    .map_err(|_| setup("starting a throwaway PostgreSQL panicked"))?;
                    let (url, pg) = started.map_err(setup)?;
                    (url, Some(Box::new(pg)))
                } else {
                    (given.to_string(), None)
                };
                let store = PgStore::open_with(&url, 4).map_err(setup)?;
                if store.head_seq().map_err(setup)? > 0 || !store.people().map_err(setup)?.is_empty() {
                    return Err(LoadError::Setup(format!("the database at {url} is not empty: give an empty one")));
                }
                let empty = store.stats().map_err(setup)?.disk_bytes;
                CityStore::Postgres { store: Box::new(store), url, empty, _scratch: scratch }
            }
        };
        let (grid_paths, registrations) = Self::register(city_store.as_store(), phones, grids)?;
        fill(city_store.as_store(), &grid_paths, &registrations)?;
        city_store.as_store().flush().map_err(setup)?;
        let (url, postgres) = match city_store {
            CityStore::Sled(store) => {
                drop(store);
                (None, None)
            }
            CityStore::Postgres { store, url, empty, _scratch } => (Some(url), Some((*store, empty, _scratch))),
        };
        let mut started = Vec::with_capacity(servers);
        for k in 0..servers {
            // Each process its own data directory (its admin socket).
            let data_k = if k == 0 { data.clone() } else { dir.path().join(format!("data-{k}")) };
            let extra: Vec<&str> = match &url {
                Some(u) => vec!["--store", u.as_str()],
                None => Vec::new(),
            };
            started.push(ServerProcess::start_binary(server_binary, &data_k, free_port(), &extra, None).await);
        }
        let phones = registrations
            .into_iter()
            .enumerate()
            .map(|(i, reg)| Phone::registered(&started[i % servers].url, reg))
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup)?;
        let mut started = started.into_iter();
        let server = started.next().ok_or_else(|| setup("no server started"))?;
        Ok(City { server, more_servers: started.collect(), grids: grid_paths, phones, postgres, _dir: dir })
    }

    /// Writes territories, people and devices into the store.
    fn register(
        store: &dyn Store,
        phones: usize,
        grids: usize,
    ) -> Result<(Vec<TerritoryPath>, Vec<DeviceRegistration>), LoadError> {
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
            store.put_person(&person).map_err(setup)?;
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

    /// Every server process's id (the first server's first).
    pub fn server_pids(&self) -> Result<Vec<u32>, LoadError> {
        std::iter::once(&self.server)
            .chain(&self.more_servers)
            .map(|s| s.pid().ok_or_else(|| setup("a server has no pid")))
            .collect()
    }

    /// Bytes the store takes: the sled data directory, or what the PostgreSQL
    /// database grew by since it was empty (`pg_database_size`).
    pub fn store_bytes(&self) -> u64 {
        match &self.postgres {
            Some((store, empty, _)) => store.stats().map(|s| s.disk_bytes.saturating_sub(*empty)).unwrap_or(0),
            None => super::measure::dir_bytes(&self.server.data),
        }
    }

    /// Kills every server process.
    pub async fn kill_servers(self) {
        let City { server, more_servers, postgres, .. } = self;
        server.kill().await;
        for s in more_servers {
            s.kill().await;
        }
        drop(postgres);
    }
}
