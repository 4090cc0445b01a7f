//! A real server in this process, on `127.0.0.1:0`, over the store the run
//! tests (a sled store in a temporary directory, or a fresh PostgreSQL database:
//! [`crate::stores`]), an explicitly sled one, or any store; default or given limits.

use crate::phone::Phone;
use crate::stores::{Backend, Database};
use gridsync_server::Limits;
use gridsync_server::admin::{add_person, add_territory};
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::{Role, TerritoryPath};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;

/// The city every test territory hangs under.
pub const CITY: &str = "tc/d1/s1";

/// A running server with its own temporary store.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database it runs on, dropped after the server.
    database: Option<Database>,
    names: AtomicUsize,
}

/// The password every test person gets.
pub const PASSWORD: &str = "correct horse battery";

impl TestServer {
    /// Starts a server on a fresh store of the store under test
    /// ([`Backend::from_env`]), with a city, district and sub-district.
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    /// Like [`Self::start`], with these limits (connections, sync queue).
    pub async fn start_with(limits: Limits) -> Self {
        match Backend::from_env() {
            Backend::Sled => Self::start_sled_with(limits).await,
            Backend::Postgres => {
                let database = Database::create();
                let mut server = Self::start_on(database.open(), limits, None).await;
                server.database = Some(database);
                server
            }
        }
    }

    /// Like [`Self::start`], always on a sled store in a temporary directory
    /// (for tests about sled itself, or that wrap it).
    pub async fn start_sled() -> Self {
        Self::start_sled_with(Limits::default()).await
    }

    /// Like [`Self::start_sled`], with these limits.
    pub async fn start_sled_with(limits: Limits) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SledStore::open(dir.path().join("data")).expect("open store"));
        Self::start_on(store, limits, Some(dir)).await
    }

    /// Like [`Self::start_sled_with`], with the sled store in `data` (e.g. on a small file system).
    pub async fn start_in(data: &Path, limits: Limits) -> Self {
        let store = Arc::new(SledStore::open(data).expect("open store"));
        Self::start_on(store, limits, None).await
    }

    /// Starts a server on `store` (any [`Store`]), adding the test city to it;
    /// `dir` is kept until the server is dropped.
    pub async fn start_on(store: Arc<dyn Store>, limits: Limits, dir: Option<tempfile::TempDir>) -> Self {
        for (i, name) in ["测试市", "测试区", "测试街道"].iter().enumerate() {
            let path: String = CITY.split('/').take(i + 1).collect::<Vec<_>>().join("/");
            add_territory(store.as_ref(), &path.parse().expect("path"), name).expect("territory");
        }
        let listener = gridsync_server::connections::listen("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gridsync_server::run_with(listener, store.clone(), limits, async {
            let _ = rx.await;
        }));
        TestServer {
            url,
            store,
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
            database: None,
            names: AtomicUsize::new(0),
        }
    }

    /// The server's address, e.g. `127.0.0.1:40123`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The server's store, for checking what it holds.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A grid `name` in community `c1` (created with the community if needed).
    pub fn grid(&self, name: &str) -> TerritoryPath {
        self.grid_in("c1", name)
    }

    /// A grid `name` in community `community`.
    pub fn grid_in(&self, community: &str, name: &str) -> TerritoryPath {
        let community: TerritoryPath = format!("{CITY}/{community}").parse().expect("community path");
        let grid = community.child(name).expect("grid path");
        let existing = self.store.territories().expect("territories");
        if !existing.iter().any(|t| t.path == community) {
            add_territory(self.store(), &community, "测试社区").expect("community");
        }
        if !existing.iter().any(|t| t.path == grid) {
            add_territory(self.store(), &grid, "测试网格").expect("grid");
        }
        grid
    }

    /// Creates a person with `role` over `territory`; returns their username.
    pub fn person(&self, role: Role, territory: &TerritoryPath) -> String {
        let n = self.names.fetch_add(1, Ordering::SeqCst);
        let username = format!("{}{n}", role.as_str());
        add_person(self.store(), &username, &format!("测试{n}"), role, territory, PASSWORD).expect("person");
        username
    }

    /// A field-staff phone signed in to `grid`.
    pub async fn phone_in(&self, grid: &TerritoryPath) -> Phone {
        let username = self.person(Role::FieldStaff, grid);
        self.phone_for(&username).await
    }

    /// A supervisor's phone over `territory`.
    pub async fn supervisor_phone(&self, territory: &TerritoryPath) -> Phone {
        let username = self.person(Role::Supervisor, territory);
        self.phone_for(&username).await
    }

    /// A phone signed in as `username` (a new device each time).
    pub async fn phone_for(&self, username: &str) -> Phone {
        Phone::sign_in(&self.url, username, PASSWORD).await.expect("sign in")
    }

    /// Every document id the server holds in `scope`.
    pub fn doc_ids(&self, scope: &TerritoryPath) -> Vec<gridsync_shared::DocId> {
        self.store.docs_in_scope(scope, None, usize::MAX).expect("docs").into_iter().map(|(id, _)| id).collect()
    }

    /// The server's copy of a document.
    pub fn document(&self, id: gridsync_shared::DocId) -> Option<automerge::Automerge> {
        self.store.load_doc(id).expect("load").map(|d| automerge::Automerge::load(&d.bytes).expect("stored doc loads"))
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
