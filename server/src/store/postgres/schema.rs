//! The PostgreSQL store's schema, as numbered migrations applied on open.
//! `schema_version` holds one row per migration applied; a database whose
//! schema is newer than this build is refused rather than misread.

use super::super::StoreError;
use super::pool::{Conn, pg};

/// Each migration, in order: migration `i + 1` is `MIGRATIONS[i]`. Statements
/// are idempotent (`IF NOT EXISTS`, `ON CONFLICT DO NOTHING`) so that two
/// servers starting at once on an empty database both succeed, and use only
/// what CockroachDB and YugabyteDB also accept (no sequences shared by tables,
/// no triggers, no advisory locks).
const MIGRATIONS: &[&str] = &[
    // 1: everything the store holds, as of issue 15.
    r#"
    CREATE TABLE IF NOT EXISTS territories (path TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS people (
        id UUID PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        territory TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
    );
    CREATE TABLE IF NOT EXISTS devices (
        id UUID PRIMARY KEY,
        person UUID NOT NULL,
        name TEXT NOT NULL,
        actor BYTEA NOT NULL,
        token_hash BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE IF NOT EXISTS device_grace (device UUID PRIMARY KEY, territories TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS device_seen (device UUID PRIMARY KEY, at BIGINT NOT NULL, pending BIGINT);
    CREATE TABLE IF NOT EXISTS feed_counter (id INT PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL);
    INSERT INTO feed_counter (id, seq, at) VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
    CREATE TABLE IF NOT EXISTS feed (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        doc UUID NOT NULL,
        grid TEXT NOT NULL,
        device UUID NOT NULL,
        heads BYTEA[] NOT NULL,
        changes BYTEA[] NOT NULL
    );
    CREATE INDEX IF NOT EXISTS feed_by_doc ON feed (doc, seq);
    CREATE INDEX IF NOT EXISTS feed_by_grid ON feed (grid, seq);
    CREATE INDEX IF NOT EXISTS feed_by_time ON feed (at, seq);
    CREATE TABLE IF NOT EXISTS records (
        id UUID PRIMARY KEY,
        grid TEXT NOT NULL,
        kind SMALLINT NOT NULL,
        seq BIGINT NOT NULL,
        summary BYTEA NOT NULL,
        flat_row BYTEA,
        base BYTEA,
        base_seq BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS records_by_grid ON records (grid, id);
    CREATE TABLE IF NOT EXISTS photo_refs (
        hash TEXT NOT NULL,
        doc UUID NOT NULL,
        ord INT NOT NULL,
        grid TEXT NOT NULL,
        size BIGINT NOT NULL,
        mime SMALLINT NOT NULL,
        PRIMARY KEY (hash, doc, ord)
    );
    CREATE TABLE IF NOT EXISTS photos (hash TEXT PRIMARY KEY, mime SMALLINT NOT NULL, bytes BYTEA NOT NULL);
    CREATE TABLE IF NOT EXISTS photo_uploads (
        hash TEXT NOT NULL,
        at_offset BIGINT NOT NULL,
        bytes BYTEA NOT NULL,
        PRIMARY KEY (hash, at_offset)
    );
    CREATE TABLE IF NOT EXISTS household_keys (hash_key BYTEA PRIMARY KEY, doc UUID NOT NULL, digest BYTEA);
    CREATE TABLE IF NOT EXISTS import_runs (id TEXT PRIMARY KEY, created_at BIGINT NOT NULL, run BYTEA NOT NULL);
    CREATE INDEX IF NOT EXISTS import_runs_by_time ON import_runs (created_at, id);
    CREATE TABLE IF NOT EXISTS import_secrets (id TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
    CREATE TABLE IF NOT EXISTS import_devices (person UUID PRIMARY KEY, device UUID NOT NULL);
    CREATE TABLE IF NOT EXISTS audit_counter (id INT PRIMARY KEY, seq BIGINT NOT NULL);
    INSERT INTO audit_counter (id, seq) VALUES (1, 0) ON CONFLICT DO NOTHING;
    CREATE TABLE IF NOT EXISTS audit (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    "#,
    // 2: store epochs (a restore begins one; a move from sled brings them) and the last backup.
    r#"
    CREATE TABLE IF NOT EXISTS store_epochs (
        n INT PRIMARY KEY,
        id BYTEA NOT NULL,
        base_seq BIGINT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS last_backup (id INT PRIMARY KEY, at BIGINT NOT NULL, head_seq BIGINT NOT NULL);
    "#,
    // 3: the territory each audit entry concerns (NULL: the whole store, and entries written before).
    r#"
    ALTER TABLE audit ADD COLUMN IF NOT EXISTS territory TEXT;
    "#,
];

/// The schema version this build writes and reads.
pub const CURRENT: i32 = MIGRATIONS.len() as i32;

/// How often a migration racing another server's is tried before giving up.
const ATTEMPTS: usize = 5;

/// Applies every migration the database lacks, each in its own transaction
/// with its `schema_version` row; refuses a database newer than this build.
/// Servers starting at once on an empty database race to create the same
/// tables (PostgreSQL may then fail one with a unique violation in its
/// catalogue): the loser tries again and finds them made.
pub(super) fn migrate(conn: &mut Conn) -> Result<i32, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(&mut conn.client) {
            Ok(version) => return Ok(version),
            Err(e @ StoreError::Engine(_)) if e.to_string().contains("newer than this") => return Err(e),
            Err(e) if attempt >= ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, attempt, "migrating raced another server; trying again");
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt as u64));
            }
        }
    }
}

fn migrate_once(client: &mut ::postgres::Client) -> Result<i32, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .map_err(pg)?;
    let applied = |client: &mut ::postgres::Client| -> Result<i32, StoreError> {
        let row = client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[]).map_err(pg)?;
        Ok(row.get(0))
    };
    let mut version = applied(client)?;
    if version > CURRENT {
        return Err(StoreError::Engine(format!(
            "the database's schema is version {version}, newer than this gridsync-server reads ({CURRENT}): run a newer release"
        )));
    }
    while version < CURRENT {
        let next = version + 1;
        let sql = MIGRATIONS[usize::try_from(version).unwrap_or(0)];
        let mut tx = client.transaction().map_err(pg)?;
        tx.batch_execute(sql).map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&next, &crate::http::now_ms()],
        )
        .map_err(pg)?;
        tx.commit().map_err(pg)?;
        tracing::info!(version = next, "PostgreSQL schema migrated");
        version = applied(client)?;
    }
    Ok(version)
}
