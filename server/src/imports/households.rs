//! 人口信息表: one row per resident, grouped into households by a stable key
//! (户号, else the head's ID number). Rows are checked and sorted by household
//! on disk (an external sort: memory stays flat for any file size); each
//! household is judged once, by the dry run, and then created, updated (only
//! what the file adds or changes, written through the shared `Editor`, so
//! phones' edits merge) or left alone (the same rows as last imported).

use super::sort::{Sorter, Spool};
use super::*;
use crate::store::DocWrite;
use automerge::{ActorId, Automerge};
use gridsync_shared::imports::{HeaderMap, ResidentRow, is_blank, match_headers, resident_row};
use gridsync_shared::records::{Editor, HouseholdFields, Member, new_imported_household, read_record};

/// Households handed to a builder thread at a time.
const CHUNK: usize = 64;
/// Households committed per store batch, by each write thread (one atomic
/// write: on a running server a phone's push waits for at most one; 512 held
/// the write lock up to 1.2 s on a loaded machine).
const COMMIT_BATCH: usize = 128;
/// How often the import makes what it committed durable (and visible to syncs).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A checked resident row as spilled to the temporary database.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Resident {
    row: u64,
    key: String,
    household_no: String,
    grid: TerritoryPath,
    address: String,
    name: String,
    relation: String,
    id_number: String,
    phone: String,
    tags: Vec<String>,
    notes: String,
}

impl Resident {
    fn from_row(row: u64, key: String, grid: TerritoryPath, r: ResidentRow) -> Self {
        Self {
            row,
            key,
            household_no: r.household_no.unwrap_or_default(),
            grid,
            address: r.address,
            name: r.name,
            relation: r.relation,
            id_number: r.id_number.unwrap_or_default(),
            phone: r.phone,
            tags: r.tags,
            notes: r.notes,
        }
    }

    fn is_head(&self) -> bool {
        self.relation == gridsync_shared::imports::HEAD_RELATION
    }
}

/// What a household's rows come to.
enum Action {
    Create,
    Update(DocId),
    Unchanged,
}

/// One household's rows, judged.
struct Judged {
    rows: Vec<Resident>,
    problems: Vec<RowProblem>,
    action: Action,
    digest: [u8; 32],
}

/// The digest of a household's rows (without row numbers: the same people
/// moved to other lines of the sheet are the same household).
fn digest(rows: &[Resident]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut bytes = Vec::new();
    for r in rows {
        // The same bytes as postcard writes a `Resident` with row 0 (postcard
        // writes a struct as its fields in order), without copying the row.
        let fields = (
            0u64,
            &r.key,
            &r.household_no,
            &r.grid,
            &r.address,
            &r.name,
            &r.relation,
            &r.id_number,
            &r.phone,
            &r.tags,
            &r.notes,
        );
        bytes.clear();
        match postcard::to_extend(&fields, bytes) {
            Ok(b) => bytes = b,
            Err(_) => bytes = Vec::new(),
        }
        h.update(&bytes);
        h.update([0xff]);
    }
    h.finalize().into()
}

fn judge(store: &dyn Store, rows: Vec<Resident>) -> Result<Judged, ImportError> {
    let mut problems = Vec::new();
    let d = digest(&rows);
    let Some(head) = rows.iter().find(|r| r.is_head()) else {
        let first = rows.first().map_or(0, |r| r.row);
        problems.push(RowProblem::new(first, "与户主关系", "该户没有户主一行（或户主一行有问题）"));
        return Ok(Judged { rows, problems, action: Action::Unchanged, digest: d });
    };
    for r in rows.iter().filter(|r| r.grid != head.grid) {
        problems.push(RowProblem::new(r.row, "所属网格", format!("与本户户主（第{}行）的网格不同", head.row)));
    }
    let mut entry = store.household_key(&key_hash(&head.key))?;
    if entry.is_none() && head.key.starts_with("no:") {
        entry = match head_key(&head.id_number) {
            Some(k) => store.household_key(&k)?,
            None => None,
        };
    }
    let action = match entry {
        None => Action::Create,
        // The same rows as this household's last import: the document is
        // there (written with its key in one batch) and in these rows' grid
        // (a record's grid is fixed, and an import writes a household only
        // in its own grid), so nothing to read.
        Some(e) if e.digest == Some(d) => Action::Unchanged,
        Some(e) => match store.load_doc(e.doc)? {
            None => Action::Create,
            Some(doc) if doc.grid != head.grid => {
                problems.push(RowProblem::new(head.row, "所属网格", "此户已登记在另一网格，不能通过导入迁移"));
                Action::Unchanged
            }
            Some(_) if e.digest == Some(d) => Action::Unchanged,
            Some(_) => Action::Update(e.doc),
        },
    };
    Ok(Judged { rows, problems, action, digest: d })
}

/// Most bytes of resident rows held in memory before a sorted run goes to disk.
const RESIDENT_RUN_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes of ID numbers held in memory before a sorted run goes to disk.
const ID_RUN_BYTES: usize = 2 * 1024 * 1024;

/// The rows as read, sorted on disk: residents by household, ID numbers by number.
struct Spilled {
    /// `<household key hash (32)><row (8, big-endian)><postcard Resident>`.
    residents: Sorter,
    /// `<ID number><0><row (8, big-endian)>`, for every row that passed its own checks.
    ids: Sorter,
    /// Rows whose household could not be told: reported unless the row repeats
    /// an ID number (then that is its problem, as it is checked first).
    no_household: Vec<RowProblem>,
}

/// Reads the file into sorted runs in `dir`; returns the report so far (and
/// None when the file cannot be imported at all: no header, or headers missing).
fn spill(store: &dyn Store, who: &Importer, path: &Path, dir: &Path) -> Result<(Report, Option<Spilled>), ImportError> {
    let territories = Territories::load(store)?;
    let mut spilled = Spilled {
        residents: Sorter::new(dir, "residents", RESIDENT_RUN_BYTES),
        ids: Sorter::new(dir, "ids", ID_RUN_BYTES),
        no_household: Vec::new(),
    };
    let mut report = Report::default();
    let mut header: Option<HeaderMap> = None;
    let mut last_head: Option<(String, TerritoryPath)> = None;
    let mut grids: HashMap<String, Option<TerritoryPath>> = HashMap::new();
    let mut record = Vec::new();
    let result = super::read::read_rows(path, &mut |number, row| {
        let Some(map) = &header else {
            match match_headers(ImportKind::Households, &row) {
                Ok(m) => {
                    report.unknown_columns = m.unknown.clone();
                    header = Some(m);
                    return Ok(());
                }
                Err(ps) => {
                    report.problems(ps);
                    return Err(ImportError::Refused(String::new()));
                }
            }
        };
        if is_blank(&row) {
            return Ok(());
        }
        report.counts.rows += 1;
        let r = match resident_row(map, number, &row) {
            Ok(r) => r,
            Err(ps) => {
                report.problems(ps);
                return Ok(());
            }
        };
        let grid = grids.entry(r.grid.clone()).or_insert_with(|| territories.resolve(&r.grid)).clone();
        if let Some(p) = territory_problem(who, grid.as_ref(), true, number, "所属网格") {
            report.problem(p);
            return Ok(());
        }
        let Some(grid) = grid else { return Ok(()) };
        if let Some(id) = &r.id_number {
            // A repeated number is found once every row is read (see `households`).
            record.clear();
            record.extend_from_slice(id.as_bytes());
            record.push(0);
            record.extend_from_slice(&number.to_be_bytes());
            spilled.ids.push(&record)?;
        }
        let key = match r.household_key() {
            Some(k) => k,
            // A member row right under its household's rows belongs to the last head above it.
            None => match &last_head {
                Some((k, g)) if *g == grid => k.clone(),
                _ => {
                    spilled.no_household.push(RowProblem::new(
                        number,
                        "户号",
                        "无法确定所属户：请填写户号或户主身份证号",
                    ));
                    return Ok(());
                }
            },
        };
        if r.is_head() {
            last_head = Some((key.clone(), grid.clone()));
        }
        let k = key_hash(&key);
        let resident = Resident::from_row(number, key, grid, r);
        record.clear();
        record.extend_from_slice(&k);
        record.extend_from_slice(&number.to_be_bytes());
        record = postcard::to_extend(&resident, std::mem::take(&mut record))
            .map_err(|e| ImportError::Internal(e.to_string()))?;
        spilled.residents.push(&record)?;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(ImportError::Refused(m)) if m.is_empty() => return Ok((report, None)),
        Err(e) => return Err(e),
    }
    if header.is_none() {
        report.problem(RowProblem::new(1, "", "文件是空的：第一行应为表头"));
        return Ok((report, None));
    }
    Ok((report, Some(spilled)))
}

/// A callback given the report and one household's rows.
type HouseholdSink<'a> = dyn FnMut(&mut Report, Vec<Resident>) -> Result<(), ImportError> + 'a;

fn row_of(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))
}

/// Calls `f` with each household's rows, in key order, rows in sheet order.
/// Reports first what only the whole file shows: a repeated ID number (every
/// row after the first with that number is left out) and a household's second
/// head row (left out).
fn households(report: &mut Report, spilled: Spilled, f: &mut HouseholdSink<'_>) -> Result<(), ImportError> {
    // Repeated ID numbers: row -> the first row with that number.
    let mut repeated: HashMap<u64, u64> = HashMap::new();
    let mut ids = spilled.ids.finish()?;
    let mut first: Option<(Vec<u8>, u64)> = None;
    while let Some(rec) = ids.next_record()? {
        let Some(split) = rec.len().checked_sub(9) else { continue };
        let (id, row) = (&rec[..split], row_of(&rec[split + 1..]));
        match &first {
            Some((first_id, first_row)) if first_id.as_slice() == id => {
                repeated.insert(row, *first_row);
            }
            _ => first = Some((id.to_vec(), row)),
        }
    }
    let mut by_row: Vec<(u64, u64)> = repeated.iter().map(|(&r, &f)| (r, f)).collect();
    by_row.sort_unstable();
    for (row, first) in by_row {
        report.problem(RowProblem::new(row, "身份证号", format!("身份证号与第{first}行重复")));
    }
    for p in spilled.no_household {
        if !repeated.contains_key(&p.row) {
            report.problem(p);
        }
    }
    let mut residents = spilled.residents.finish()?;
    let mut current: Option<[u8; 32]> = None;
    let mut group: Vec<Resident> = Vec::new();
    let mut head: Option<u64> = None;
    loop {
        let rec = residents.next_record()?;
        let key: Option<[u8; 32]> =
            rec.as_ref().map(|r| r.get(..32).and_then(|s| s.try_into().ok()).unwrap_or([0; 32]));
        if key != current {
            if !group.is_empty() {
                f(report, std::mem::take(&mut group))?;
            }
            current = key;
            head = None;
        }
        let Some(rec) = rec else { break };
        let row = row_of(rec.get(32..40).unwrap_or(&[]));
        if repeated.contains_key(&row) {
            continue;
        }
        let resident = postcard::from_bytes::<Resident>(rec.get(40..).unwrap_or(&[]))
            .map_err(|e| ImportError::Internal(e.to_string()))?;
        if resident.is_head() {
            if let Some(first) = head {
                report.problem(RowProblem::new(row, "与户主关系", format!("同一户有两个户主（另见第{first}行）")));
                continue;
            }
            head = Some(row);
        }
        group.push(resident);
    }
    Ok(())
}

/// A household the write pass writes, as the dry run judged it.
#[derive(Serialize, Deserialize)]
struct Planned {
    rows: Vec<Resident>,
    /// The document to update (None: create one).
    update: Option<[u8; 16]>,
    digest: [u8; 32],
}

pub(super) fn run(
    store: &dyn Store,
    who: &Importer,
    path: &Path,
    mode: Mode,
    now: i64,
    progress: &mut ProgressFn<'_>,
) -> Result<Outcome, ImportError> {
    let admin = who.admin.clone().ok_or_else(|| {
        ImportError::Refused("导入住户需要一位管理员：请先创建管理员（person add --role administrator）".into())
    })?;
    // Removed (with every run and the plan in it) when dropped.
    let dir = tempfile::Builder::new()
        .prefix("gridsync-import-")
        .tempdir()
        .map_err(|e| ImportError::Internal(format!("temporary directory: {e}")))?;
    let (mut report, spilled) = spill(store, who, path, dir.path())?;
    // What the write pass writes, judged once here: households to create or update.
    let mut plan = if mode.writes() { Some(Spool::create(dir.path().join("plan"))?) } else { None };
    let read = spilled.is_some();
    if let Some(spilled) = spilled {
        households(&mut report, spilled, &mut |report, rows| {
            let j = judge(store, rows)?;
            if !j.problems.is_empty() {
                report.problems(j.problems);
                return Ok(());
            }
            let update = match j.action {
                Action::Create => {
                    report.counts.create += 1;
                    None
                }
                Action::Update(doc) => {
                    report.counts.update += 1;
                    Some(*doc.as_bytes())
                }
                Action::Unchanged => {
                    report.counts.unchanged += 1;
                    return Ok(());
                }
            };
            if let Some(plan) = &mut plan {
                let planned = Planned { rows: j.rows, update, digest: j.digest };
                plan.push(&postcard::to_allocvec(&planned).map_err(|e| ImportError::Internal(e.to_string()))?)?;
            }
            Ok(())
        })?;
    }
    report.finish();
    let mut outcome = Outcome { report, ..Outcome::default() };
    let Some(plan) = plan else { return Ok(outcome) };
    if !read || !may_write(&outcome.report, mode) {
        return Ok(outcome);
    }
    let device = import_device(store, &admin, now)?;
    let actor = ActorId::from(device.actor.as_slice());
    let author = author_of(&admin);
    let c = &outcome.report.counts;
    let (total, unchanged) = (c.create + c.update + c.unchanged, c.unchanged);
    let written = write(store, plan, &Builder { author, actor, device: device.id, now }, (unchanged, total), progress)?;
    outcome.written = Counts { rows: outcome.report.counts.rows, ..written };
    drop(dir);
    Ok(outcome)
}

/// What every household of one import is written with.
struct Builder {
    author: Author,
    actor: ActorId,
    device: gridsync_shared::DeviceId,
    now: i64,
}

/// Writes the planned households as a pipeline: this thread reads the plan
/// (judged once, by the dry run) and hands chunks over a bounded channel to
/// worker threads (one per core), each of which builds its households'
/// documents and commits them in batches of [`COMMIT_BATCH`] (the store hashes
/// and packs a batch in the calling thread, before its writers' lock, so that
/// work is spread over the cores too). The channel is bounded, so memory stays
/// flat however long the file; a failure anywhere stops the others (what was
/// committed stays).
fn write(
    store: &dyn Store,
    plan: Spool,
    builder: &Builder,
    (unchanged, total): (u64, u64),
    progress: &mut ProgressFn<'_>,
) -> Result<Counts, ImportError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{Receiver, sync_channel};
    use std::sync::{Arc, Mutex};
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    let (jobs_tx, jobs_rx) = sync_channel::<Vec<Judged>>(2 * workers);
    let jobs_rx: Arc<Mutex<Receiver<Vec<Judged>>>> = Arc::new(Mutex::new(jobs_rx));
    // Households the dry run found unchanged are not in the plan: done already.
    let shared = Mutex::new(Committed {
        written: Counts { unchanged, ..Counts::default() },
        done: unchanged,
        total,
        batches: 0,
        longest: std::time::Duration::ZERO,
        flushed: std::time::Instant::now(),
        progress,
        error: None,
    });
    let failed = AtomicBool::new(false);
    let read = std::thread::scope(|s| {
        for _ in 0..workers {
            let jobs_rx = Arc::clone(&jobs_rx);
            let (shared, failed) = (&shared, &failed);
            s.spawn(move || {
                if let Err(e) = build_and_commit(store, builder, &jobs_rx, shared, failed) {
                    failed.store(true, Ordering::SeqCst);
                    if let Ok(mut c) = shared.lock() {
                        c.error.get_or_insert(e);
                    }
                }
            });
        }
        // Only the workers hold the receiver now: when they are gone, sending fails.
        drop(jobs_rx);
        let mut chunk: Vec<Judged> = Vec::with_capacity(CHUNK);
        let read = plan
            .for_each(&mut |record| {
                let p: Planned = postcard::from_bytes(&record).map_err(|e| ImportError::Internal(e.to_string()))?;
                let action = p.update.map_or(Action::Create, |d| Action::Update(DocId::from_bytes(d)));
                chunk.push(Judged { rows: p.rows, problems: Vec::new(), action, digest: p.digest });
                if chunk.len() >= CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    // Refused only when the workers stopped: their error says why.
                    if jobs_tx.send(full).is_err() {
                        return Err(ImportError::Internal("the import's write threads stopped".into()));
                    }
                }
                Ok(())
            })
            .and_then(|()| {
                if !chunk.is_empty() && jobs_tx.send(std::mem::take(&mut chunk)).is_err() {
                    return Err(ImportError::Internal("the import's write threads stopped".into()));
                }
                Ok(())
            });
        if read.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        drop(jobs_tx);
        read
    });
    let c = shared.into_inner().map_err(|_| ImportError::Internal("import write state poisoned".into()))?;
    if let Some(e) = c.error {
        return Err(e);
    }
    read?;
    store.flush()?;
    (c.progress)(c.done, c.total);
    // How long each batch kept other writers (phones' pushes) waiting at most.
    tracing::info!(
        batches = c.batches,
        longest_commit_ms = c.longest.as_millis() as u64,
        "import: households committed"
    );
    Ok(c.written)
}

/// What the write threads share: counts, progress, the first error.
struct Committed<'a, 'p> {
    written: Counts,
    done: u64,
    total: u64,
    batches: u32,
    longest: std::time::Duration,
    flushed: std::time::Instant,
    progress: &'a mut ProgressFn<'p>,
    error: Option<ImportError>,
}

/// One write thread: builds the chunks it takes and commits them in batches.
fn build_and_commit(
    store: &dyn Store,
    b: &Builder,
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Vec<Judged>>>,
    shared: &std::sync::Mutex<Committed<'_, '_>>,
    failed: &std::sync::atomic::AtomicBool,
) -> Result<(), ImportError> {
    let mut writes = Vec::with_capacity(COMMIT_BATCH + CHUNK);
    let mut pending = Counts::default();
    loop {
        if failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        // The lock is held only to take the next chunk.
        let chunk = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(chunk)) => chunk,
            _ => break,
        };
        for j in chunk {
            match build(store, b, j)? {
                Built::Write(w, keys, created) => {
                    if created {
                        pending.create += 1;
                    } else {
                        pending.update += 1;
                    }
                    writes.push((*w, keys));
                }
                Built::Unchanged => pending.unchanged += 1,
            }
        }
        if writes.len() >= COMMIT_BATCH {
            commit_batch(store, b.now, &mut writes, &mut pending, shared)?;
        }
    }
    commit_batch(store, b.now, &mut writes, &mut pending, shared)
}

/// Commits `writes` (one atomic store batch), adds `pending` to the counts,
/// makes what was committed durable now and then (so phones syncing meanwhile
/// receive their households while the import goes on) and reports progress.
fn commit_batch(
    store: &dyn Store,
    now: i64,
    writes: &mut Vec<(DocWrite, Vec<HouseholdKey>)>,
    pending: &mut Counts,
    shared: &std::sync::Mutex<Committed<'_, '_>>,
) -> Result<(), ImportError> {
    let started = std::time::Instant::now();
    let committed = !writes.is_empty();
    if committed {
        store.commit_docs(std::mem::take(writes), now)?;
    }
    let took = started.elapsed();
    let mut c = shared.lock().map_err(|_| ImportError::Internal("import write state poisoned".into()))?;
    let p = std::mem::take(pending);
    c.written.create += p.create;
    c.written.update += p.update;
    c.written.unchanged += p.unchanged;
    c.done += p.create + p.update + p.unchanged;
    if committed {
        c.batches += 1;
        c.longest = c.longest.max(took);
    }
    if c.flushed.elapsed() >= FLUSH_EVERY {
        store.flush()?;
        c.flushed = std::time::Instant::now();
    }
    let (done, total) = (c.done, c.total);
    (c.progress)(done, total);
    Ok(())
}

enum Built {
    Write(Box<DocWrite>, Vec<HouseholdKey>, bool),
    Unchanged,
}

/// A member id as the shared editor makes them: a UUID v7 at `now` whose
/// first 12 random bits are `seq`, so members list in the order given.
fn new_member_id(now: i64, seq: usize) -> String {
    let mut random = [0u8; 10];
    random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
    let seq = seq.min(0xfff);
    random[0] = (seq >> 8) as u8;
    random[1] = seq as u8;
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(now).unwrap_or(0), &random).into_uuid().to_string()
}

fn nz(new: &str, old: &str) -> String {
    if new.is_empty() { old.to_string() } else { new.to_string() }
}

fn union(old: &[String], new: &[String]) -> Vec<String> {
    let mut out = old.to_vec();
    for t in new {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

fn member_of(r: &Resident) -> Member {
    Member {
        id: String::new(),
        name: r.name.clone(),
        relation: r.relation.clone(),
        id_number: r.id_number.clone(),
        phone: r.phone.clone(),
        tags: r.tags.clone(),
    }
}

/// The fields the file gives over `old` (None: a new household): values the
/// file leaves empty keep what is there; tags and members are only added to;
/// notes the record lacks are appended.
fn fields_for(rows: &[Resident], old: Option<&HouseholdFields>) -> HouseholdFields {
    let empty = HouseholdFields::default();
    let old = old.unwrap_or(&empty);
    let head = rows.iter().find(|r| r.is_head()).unwrap_or(&rows[0]);
    let notes = if head.notes.is_empty() || old.notes.contains(&head.notes) {
        old.notes.clone()
    } else if old.notes.is_empty() {
        head.notes.clone()
    } else {
        format!("{}\n{}", old.notes, head.notes)
    };
    let mut matched: Vec<&str> = Vec::new();
    let mut members = Vec::new();
    for r in rows {
        let by_id = old.members.iter().find(|m| !r.id_number.is_empty() && m.id_number == r.id_number);
        let by_name =
            || old.members.iter().find(|m| m.name == r.name && (m.id_number.is_empty() || r.id_number.is_empty()));
        match by_id.or_else(by_name).filter(|m| !matched.contains(&m.id.as_str())) {
            Some(m) => {
                matched.push(m.id.as_str());
                members.push(Member {
                    id: m.id.clone(),
                    name: nz(&r.name, &m.name),
                    relation: nz(&r.relation, &m.relation),
                    id_number: nz(&r.id_number, &m.id_number),
                    phone: nz(&r.phone, &m.phone),
                    tags: union(&m.tags, &r.tags),
                });
            }
            None => members.push(member_of(r)),
        }
    }
    HouseholdFields {
        address: nz(&head.address, &old.address),
        head: nz(&head.name, &old.head),
        phone: nz(&head.phone, &old.phone),
        id_number: nz(&head.id_number, &old.id_number),
        members,
        tags: union(&old.tags, &head.tags),
        notes,
    }
}

fn keys_for(j: &Judged, doc: DocId) -> Vec<HouseholdKey> {
    let head = j.rows.iter().find(|r| r.is_head());
    let own = head.map_or_else(|| j.rows[0].key.clone(), |h| h.key.clone());
    let mut keys = vec![HouseholdKey {
        key: key_hash(&own),
        entry: HouseholdKeyEntry { doc, digest: Some(j.digest) },
        replace: true,
    }];
    if let Some(k) = head.and_then(|h| head_key(&h.id_number))
        && k != keys[0].key
    {
        keys.push(HouseholdKey { key: k, entry: HouseholdKeyEntry { doc, digest: None }, replace: false });
    }
    keys
}

fn rule_error(row: u64, e: impl std::fmt::Display) -> ImportError {
    // The rules' text may quote a value: only the row goes out, and nothing is logged but the row.
    let _ = e;
    tracing::warn!(row, "import: a household broke the record rules");
    ImportError::Refused(format!("第{row}行的住户不符合记录规则，导入已停止"))
}

fn build(store: &dyn Store, b: &Builder, j: Judged) -> Result<Built, ImportError> {
    let head_row = j.rows.iter().find(|r| r.is_head()).map_or(0, |r| r.row);
    let grid = j.rows[0].grid.clone();
    let (doc_id, doc, before, created, record) = match j.action {
        Action::Unchanged => return Ok(Built::Unchanged),
        Action::Create => {
            let mut random = [0u8; 10];
            random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
            let id = DocId::new_v7(u64::try_from(b.now).unwrap_or(0), random);
            let mut fields = fields_for(&j.rows, None);
            for (seq, m) in fields.members.iter_mut().enumerate() {
                m.id = new_member_id(b.now, seq);
            }
            // One batch of operations, checked with the shared rules on the
            // fields written (the reader would read back the same record).
            let (doc, record) = new_imported_household(id, b.actor.clone(), &b.author, &grid, b.now, &fields)
                .map_err(|e| rule_error(head_row, e))?;
            (id, doc, Vec::new(), true, record)
        }
        Action::Update(id) => {
            let stored = store.load_doc(id)?.ok_or_else(|| ImportError::Internal("household vanished".into()))?;
            let mut doc = Automerge::load(&stored.bytes).map_err(|e| ImportError::Internal(e.to_string()))?;
            doc.set_actor(b.actor.clone());
            let before = doc.get_heads();
            let old = match read_record(&doc).map_err(|e| rule_error(head_row, e))? {
                Record::Household(h) => h.fields,
                _ => return Err(ImportError::Refused(format!("第{head_row}行：该户号对应的记录不是住户"))),
            };
            let fields = fields_for(&j.rows, Some(&old));
            let mut editor = Editor::new(&mut doc, &b.author, b.now);
            let changed = editor.update_household(&fields).map_err(|e| rule_error(head_row, e))?;
            if changed.is_none() {
                return Ok(Built::Unchanged);
            }
            let record = read_record(&doc).map_err(|e| rule_error(head_row, e))?;
            (id, doc, before, false, record)
        }
    };
    let changes: Vec<Vec<u8>> = doc.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let write = DocWrite {
        doc: doc_id,
        grid,
        summary: record.summary(),
        // The store keeps the changes; a whole document only stands in for none.
        bytes: if changes.is_empty() { doc.save() } else { Vec::new() },
        heads: doc.get_heads(),
        device: b.device,
        changes,
        photos: Vec::new(),
        row: Some(gridsync_shared::records::row::encode_row(&record)),
    };
    Ok(Built::Write(Box::new(write), keys_for(&j, doc_id), created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Territory;

    fn id_number(n: u32) -> String {
        let first17 = format!("42090219500101{n:03}");
        let weights = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17.chars().zip(weights).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
        format!("{first17}{}", "10X98765432".chars().nth((sum % 11) as usize).unwrap_or('0'))
    }

    /// What only the whole file shows is found after the sort, as the rows
    /// were checked one by one before: a repeated ID number (every later row
    /// with it left out, reported once even when its household is unknown too),
    /// a household's second head row, and a member row without 户号 belongs to
    /// the head above it in its grid.
    #[test]
    fn repeated_id_numbers_and_second_heads_are_reported_and_left_out() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::SledStore::open(dir.path().join("data")).expect("store");
        for (path, name) in [("xg", "孝感市"), ("xg/xn", "孝南区"), ("xg/xn/s0", "街道"), ("xg/xn/s0/c0", "社区")]
            .into_iter()
            .chain([("xg/xn/s0/c0/g1", "网格1"), ("xg/xn/s0/c0/g2", "网格2")])
        {
            store.put_territory(&Territory { path: path.parse().expect("path"), name: name.into() }).expect("put");
        }
        let (g1, g2) = ("xg/xn/s0/c0/g1", "xg/xn/s0/c0/g2");
        let lines = [
            "户号,所属网格,地址,姓名,与户主关系,身份证号,联系电话,标签,备注".to_string(),
            format!("HH1,{g1},东湖路1号,甲,户主,{},,,", id_number(1)),
            format!("HH1,{g1},,乙,配偶,{},,,", id_number(2)),
            format!("HH2,{g1},东湖路2号,丙,户主,{},,,", id_number(1)),
            format!("HH1,{g1},东湖路9号,丁,户主,{},,,", id_number(3)),
            format!("HH3,{g1},东湖路3号,戊,户主,{},,,", id_number(4)),
            format!(",{g1},,己,子女,{},,,", id_number(5)),
            format!(",{g2},,庚,子女,{},,,", id_number(2)),
            format!(",{g2},,辛,子女,{},,,", id_number(6)),
        ];
        let file = dir.path().join("人口信息表.csv");
        std::fs::write(&file, lines.join("\n")).expect("write");
        let who = Importer { admin: None, actor: "test".into() };
        let sorted = tempfile::tempdir().expect("dir");
        let (mut report, spilled) = spill(&store, &who, &file, sorted.path()).expect("spill");
        let mut groups: Vec<Vec<String>> = Vec::new();
        households(&mut report, spilled.expect("read"), &mut |_, rows| {
            groups.push(rows.into_iter().map(|r| r.name).collect());
            Ok(())
        })
        .expect("households");
        report.finish();
        let problems: Vec<(u64, &str)> = report.problems.iter().map(|p| (p.row, p.column.as_str())).collect();
        assert_eq!(problems, [(4, "身份证号"), (5, "与户主关系"), (8, "身份证号"), (9, "户号")]);
        assert!(report.problems[0].reason.contains("第2行"), "{:?}", report.problems[0]);
        assert!(report.problems[1].reason.contains("第2行"), "{:?}", report.problems[1]);
        assert!(report.problems[2].reason.contains("第3行"), "{:?}", report.problems[2]);
        groups.sort();
        assert_eq!(groups, [vec!["戊", "己"], vec!["甲", "乙"]]);
        assert_eq!(report.counts.rows, 8);
    }

    /// Digests are kept in the store from earlier imports: computing them
    /// without copying rows must give the bytes the copy gave.
    #[test]
    fn household_digest_is_the_one_earlier_imports_stored() {
        let resident = |row: u64, name: &str, tags: Vec<String>| Resident {
            row,
            key: "no:HH1".into(),
            household_no: "HH1".into(),
            grid: "xg/xn/s0/c0/g1".parse().expect("grid"),
            address: "东湖路1号".into(),
            name: name.into(),
            relation: "户主".into(),
            id_number: "420902195001010011".into(),
            phone: "13800130000".into(),
            tags,
            notes: String::new(),
        };
        let rows = vec![resident(2, "户主", vec!["独居老人".into()]), resident(3, "成员", Vec::new())];
        let mut h = Sha256::new();
        for r in &rows {
            let r = Resident { row: 0, ..r.clone() };
            h.update(postcard::to_allocvec(&r).expect("encode"));
            h.update([0xff]);
        }
        let earlier: [u8; 32] = h.finalize().into();
        assert_eq!(digest(&rows), earlier);
        let mut other = rows.clone();
        other[1].name = "别人".into();
        assert_ne!(digest(&other), earlier);
    }
}
