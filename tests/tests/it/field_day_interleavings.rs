//! A field day's work with faults in between, drawn at random from a seed:
//! several phones (a grid manager on two phones, a second grid manager, the
//! community's supervisor) create records (tapped twice, submitted again after
//! a lost response), edit fields, void, add, edit and remove household
//! members, hand cases over (交办), move cases on and reopen them (grid
//! managers and the supervisor at once, some moves made while a sync is on
//! its way) and choose between conflicting values,
//! while responses are lost, phones are killed and reopened from storage, and
//! the real server binary is killed with SIGKILL and restarted. After each
//! case everything syncs and must hold: nothing acknowledged or made is
//! missing anywhere, all converge, no duplicate record, no refusal, and no
//! voided record counted in a report.
//!
//! `./dev test` runs 32 cases; `GRIDSYNC_INTERLEAVINGS=5000` runs many by hand,
//! `GRIDSYNC_INTERLEAVINGS_SEED=<n>` fixes the run's seed and
//! `GRIDSYNC_INTERLEAVING_CASE=<seed>` runs the one case a failure names.

use automerge::{ChangeHash, ReadDoc};
use gridsync_client::{MemoryStorage, Replica, SyncReport};
use gridsync_server::admin::add_territory;
use gridsync_server::auth::{hash_password, register_device};
use gridsync_server::store::{Person, Store, Territory};
use gridsync_shared::directory::Directory;
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::records::{
    CaseFields, CaseKind, HouseholdFields, Member, NewRecord, PromiseFields, Record, RecordKind, VisitFields, VisitKind,
};
use gridsync_shared::reports::{Period, report};
use gridsync_shared::rules::Rejection;
use gridsync_shared::workflow::{CaseStatus, StatusMove, possible_moves};
use gridsync_shared::{DocId, PersonId, Role, TerritoryPath};
use gridsync_tests::Backend;
use gridsync_tests::Phone;
use gridsync_tests::chaos::audit_store;
use gridsync_tests::process::{ServerProcess, free_port};
use gridsync_tests::proxy::size_from_env;
use gridsync_tests::stores::open_store;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The sub-district every case's community hangs under.
const ROOT: &str = "fd/d1/s1";

/// The people and devices of one case: grid manager A on two phones, grid
/// manager B, supervisor S over the community, and a fresh phone of S's that
/// signs in only at the end to read what the server holds.
struct Cast {
    grid: TerritoryPath,
    community: TerritoryPath,
    a: PersonId,
    b: PersonId,
    devices: [DeviceRegistration; 4],
    observer: DeviceRegistration,
}

/// Writes the territories, people and devices of `cases` cases straight into
/// the store (one password hash for all: argon2 per person would dominate).
fn cast_cases(store: &dyn Store, first: usize, cases: usize) -> Vec<Cast> {
    for (p, name) in [("fd", "田野市"), ("fd/d1", "城区"), (ROOT, "中心街道")] {
        add_territory(store, &p.parse().expect("path"), name).expect("territory");
    }
    let hash = hash_password("field-day-password").expect("hash");
    let now = gridsync_tests::now_ms();
    let mut casts = Vec::with_capacity(cases);
    for n in first..first + cases {
        let community: TerritoryPath = format!("{ROOT}/c{n}").parse().expect("community");
        let grid = community.child("g1").expect("grid");
        // Written directly: `add_territory` reads every territory to find the
        // parent, which thousands of cases make quadratic.
        for (path, name) in [(&community, format!("第{n}社区")), (&grid, "第一网格".to_string())] {
            store.put_territory(&Territory { path: path.clone(), name }).expect("territory");
        }
        let person = |tag: &str, role: Role, territory: &TerritoryPath| {
            let p = Person {
                id: PersonId(uuid::Uuid::new_v4()),
                username: format!("{tag}{n}"),
                name: format!("{tag}{n}号"),
                role,
                territory: territory.clone(),
                password_hash: hash.clone(),
                created_at: now,
            };
            store.put_person(&p).expect("person");
            p
        };
        let (a, b, s) = (
            person("wga", Role::FieldStaff, &grid),
            person("wgb", Role::FieldStaff, &grid),
            person("zr", Role::Supervisor, &community),
        );
        let device = |p: &Person| register_device(store, p, "测试手机", now).expect("device");
        casts.push(Cast {
            grid: grid.clone(),
            community,
            a: a.id,
            b: b.id,
            devices: [device(&a), device(&a), device(&b), device(&s)],
            observer: device(&s),
        });
    }
    store.flush().expect("flush");
    casts
}

/// The real server binary on a fixed port and data directory, killed with
/// SIGKILL and started again at will.
struct Server {
    process: Option<ServerProcess>,
    data: PathBuf,
    port: u16,
    url: String,
    kills: u64,
    /// Time spent starting the server again.
    down_for: Duration,
}

impl Server {
    async fn start(data: &Path) -> Server {
        let port = free_port();
        let process = ServerProcess::start(data, port, &[]).await;
        let url = process.url.clone();
        Server { process: Some(process), data: data.to_path_buf(), port, url, kills: 0, down_for: Duration::ZERO }
    }

    /// SIGKILL; the server stays down until [`Self::up`].
    async fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill().await;
            self.kills += 1;
        }
    }

    async fn up(&mut self) {
        if self.process.is_none() {
            let t = Instant::now();
            self.process = Some(ServerProcess::start(&self.data, self.port, &[]).await);
            self.down_for += t.elapsed();
        }
    }
}

/// One phone and what its grid manager would swear to.
struct Device {
    name: &'static str,
    phone: Option<Phone>,
    person: PersonId,
    role: Role,
    /// Every change this phone made, per record.
    made: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    /// Changes that left the outbox after a response was received and applied
    /// without their record being refused: acknowledged by the server.
    acknowledged: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    /// Refusals the server sent.
    refusals: Vec<(DocId, Rejection)>,
    /// Voids this phone made, per record.
    voids: BTreeMap<DocId, usize>,
}

impl Device {
    fn phone(&mut self) -> &mut Phone {
        self.phone.as_mut().expect("phone")
    }

    fn tick(&mut self) -> i64 {
        let p = self.phone();
        p.clock += 1;
        p.clock
    }

    fn note_made(&mut self, id: DocId) {
        let hashes: Vec<ChangeHash> =
            self.phone().replica.outbox().find(|(d, _)| *d == id).map(|(_, h)| h.to_vec()).unwrap_or_default();
        self.made.entry(id).or_default().extend(hashes);
    }

    fn outbox(&self) -> BTreeMap<DocId, Vec<ChangeHash>> {
        gridsync_tests::chaos::outbox_of(self.phone.as_ref().expect("phone"))
    }

    /// One request and its response, logging what was acknowledged.
    async fn exchange(&mut self) -> Result<SyncReport, String> {
        let before = self.outbox();
        let request = self.phone().replica.build_request();
        self.send(before, request).await
    }

    /// Sends a request built when the outbox was `before`, applies the
    /// response and logs what it acknowledged.
    async fn send(&mut self, before: BTreeMap<DocId, Vec<ChangeHash>>, request: Vec<u8>) -> Result<SyncReport, String> {
        let response = self.phone().post_sync(&request).await.map_err(|e| e.to_string())?;
        let now = self.tick();
        let report = self.phone().replica.apply_response(&response, now).map_err(|e| e.to_string())?;
        let after = self.outbox();
        let refused: BTreeSet<DocId> = report.rejected.iter().map(|(id, _)| *id).collect();
        gridsync_tests::chaos::record_acknowledged(&mut self.acknowledged, before, &after, &refused);
        self.refusals.extend(report.rejected.iter().cloned());
        Ok(report)
    }

    /// A request the server acts on whose response never arrives.
    async fn exchange_losing_response(&mut self) -> Result<(), String> {
        let request = self.phone().replica.build_request();
        self.phone().post_sync(&request).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Syncs until nothing waits on either side, riding out a restarting server.
    async fn settle(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.exchange().await {
                Ok(r) if !r.more && r.pending == 0 => return Ok(()),
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => return Err(format!("{}: cannot sync: {e}", self.name)),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// Fetches the directory of names (`GET /v1/directory`) and keeps it on the phone.
async fn fetch_directory(phone: &mut Phone, url: &str) -> Result<(), String> {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/directory"))
        .bearer_auth(phone.token())
        .send()
        .await
        .map_err(|e| format!("directory: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("directory: {}", resp.status()));
    }
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
    let directory: Directory = resp.json().await.map_err(|e| format!("directory: {e}"))?;
    phone.replica.set_directory(directory, etag).map_err(|e| format!("directory: {e}"))?;
    Ok(())
}

/// A record form: its id fixed when it opened, and what was last submitted.
#[derive(Clone)]
struct Form {
    id: DocId,
    device: usize,
    new: NewRecord,
}

fn new_record(rng: &mut StdRng, n: usize, at: i64) -> NewRecord {
    match rng.random_range(0..20) {
        0..7 => NewRecord::Household(HouseholdFields {
            address: format!("东湖路{n}号"),
            head: "陈桂英".into(),
            tags: if rng.random_bool(0.5) { vec!["困难群众".into()] } else { Vec::new() },
            members: vec![Member { name: "周丽".into(), relation: "女儿".into(), ..Member::default() }],
            ..HouseholdFields::default()
        }),
        7..11 => NewRecord::VisitLog(VisitFields {
            visited_at: at,
            kind: Some(VisitKind::Routine),
            notes: format!("第{n}次走访，老人身体尚可"),
            ..VisitFields::default()
        }),
        11..16 => NewRecord::Case(CaseFields {
            kind: CaseKind::Hazard,
            title: format!("楼道堆放杂物{n}"),
            description: "三楼楼道".into(),
            household: None,
            visit: None,
            due_at: rng.random_bool(0.5).then_some(at - 60_000),
        }),
        _ => NewRecord::Promise(PromiseFields {
            content: format!("协调物业修路灯{n}"),
            household: None,
            due_at: if rng.random_bool(0.5) { at - 60_000 } else { at + 7 * 86_400_000 },
        }),
    }
}

/// The same form with some text changed (submitted again after more typing).
fn retyped(new: &NewRecord, n: usize) -> NewRecord {
    let mut new = new.clone();
    match &mut new {
        NewRecord::Household(f) => f.notes = format!("补充{n}"),
        NewRecord::VisitLog(f) => f.notes.push_str(&format!("，补充{n}")),
        NewRecord::Case(f) => f.description.push_str(&format!("，补充{n}")),
        NewRecord::Promise(f) => f.content.push_str(&format!("（补充{n}）")),
    }
    new
}

/// One case: its people, the forms opened, a trace of every step.
struct Day {
    rng: StdRng,
    devices: Vec<Device>,
    grid: TerritoryPath,
    community: TerritoryPath,
    assignees: [PersonId; 2],
    forms: Vec<Form>,
    trace: Vec<String>,
    n: usize,
    lost_responses: u64,
    reopens: u64,
    refused_locally: u64,
    /// How many of each kind of work the phones did.
    did: BTreeMap<&'static str, u64>,
}

impl Day {
    fn log(&mut self, line: String) {
        self.trace.push(line);
    }

    /// Submits form `f` (again, if it was submitted before).
    fn submit(&mut self, f: usize) {
        let Form { id, device, new } = self.forms[f].clone();
        let grid = self.grid.clone();
        let d = &mut self.devices[device];
        let now = d.tick();
        match d.phone().replica.create_with_id(id, Some(&grid), now, &new) {
            Ok(got) => {
                assert_eq!(got, id, "a form's submit names the form's record");
                d.note_made(id);
            }
            Err(e) => panic!("{}: submitting form {id} failed: {e}\n{}", d.name, self.trace.join("\n")),
        }
    }

    fn open_form(&mut self, device: usize) {
        self.n += 1;
        let at = self.devices[device].tick();
        let new = new_record(&mut self.rng, self.n, at);
        let id = Replica::<MemoryStorage>::new_id(at);
        self.forms.push(Form { id, device, new });
        let f = self.forms.len() - 1;
        self.log(format!(
            "{}: opens a {:?} form {id} and submits",
            self.devices[device].name,
            self.forms[f].new.kind()
        ));
        self.submit(f);
        if self.rng.random_bool(0.3) {
            *self.did.entry("double taps").or_default() += 1;
            self.log(format!("{}: taps 保存 again", self.devices[device].name));
            self.submit(f);
        }
    }

    /// Submits one of this phone's forms again, sometimes with more text.
    fn resubmit(&mut self, device: usize) {
        let mine: Vec<usize> = (0..self.forms.len()).filter(|&f| self.forms[f].device == device).collect();
        let Some(&f) = mine.choose(&mut self.rng) else { return self.open_form(device) };
        self.n += 1;
        if self.rng.random_bool(0.5) {
            self.forms[f].new = retyped(&self.forms[f].new, self.n);
        }
        *self.did.entry("forms submitted again").or_default() += 1;
        self.log(format!("{}: submits form {} again", self.devices[device].name, self.forms[f].id));
        self.submit(f);
    }

    /// A record this phone holds, of `kind` if given.
    fn pick(&mut self, device: usize, kind: Option<RecordKind>) -> Option<(DocId, Record)> {
        let records: Vec<(DocId, Record)> = self.devices[device].phone().replica.records_of(kind).collect();
        // Half the time one of the first few: the records everybody goes back
        // to, so that phones edit the same fields at once.
        let few = if self.rng.random_bool(0.5) { records.len().min(3) } else { records.len() };
        records[..few].choose(&mut self.rng).cloned()
    }

    /// Runs an edit on `device`'s phone; a refusal by the phone's own rules is counted.
    fn edit(
        &mut self,
        device: usize,
        id: DocId,
        label: &'static str,
        what: String,
        f: impl FnOnce(&mut gridsync_shared::records::Editor<'_>) -> Result<(), gridsync_shared::records::EditError>,
    ) -> bool {
        let d = &mut self.devices[device];
        let name = d.name;
        let result = d.phone().edit(id, f);
        match result {
            Ok(()) => {
                d.note_made(id);
                *self.did.entry(label).or_default() += 1;
                self.log(format!("{name}: {what} on {id}"));
                true
            }
            Err(e) => {
                self.refused_locally += 1;
                self.log(format!("{name}: {what} on {id} refused by the phone: {e}"));
                false
            }
        }
    }

    fn edit_fields(&mut self, device: usize) {
        let Some((id, record)) = self.pick(device, None) else { return };
        self.n += 1;
        let n = self.n;
        // The first of each kind's fields is single-valued: concurrent edits
        // of it are conflicts to show and resolve.
        let pick: u32 = if self.rng.random_bool(0.6) { 0 } else { self.rng.random_range(1..3) };
        let new = match record {
            Record::Household(h) => {
                let mut f = h.fields;
                match pick {
                    0 => f.phone = format!("1380712{n:04}"),
                    1 => f.tags.push(format!("标签{n}")),
                    _ => f.address.push_str(&format!("{n}室")),
                }
                NewRecord::Household(f)
            }
            Record::VisitLog(v) => {
                let mut f = v.fields;
                match pick {
                    0 => f.kind = Some(VisitKind::ALL[n % VisitKind::ALL.len()]),
                    1 => f.concerns.push(format!("诉求{n}")),
                    _ => f.notes.push_str(&format!("；补记{n}")),
                }
                NewRecord::VisitLog(f)
            }
            Record::Case(c) => {
                let mut f = c.fields;
                match pick {
                    0 => f.title = format!("楼道堆放杂物（改{n}）"),
                    1 => f.kind = CaseKind::ALL[n % CaseKind::ALL.len()],
                    _ => f.due_at = Some(self.devices[device].phone().clock + n as i64),
                }
                NewRecord::Case(f)
            }
            Record::Promise(p) => {
                let mut f = p.fields;
                match pick {
                    0 => f.content.push_str(&format!("（改{n}）")),
                    _ => f.due_at += 1,
                }
                NewRecord::Promise(f)
            }
        };
        self.edit(device, id, "field edits", "edits fields".into(), |e| e.update_fields(&new).map(|_| ()));
    }

    fn void(&mut self, device: usize) {
        let Some((id, record)) = self.pick(device, None) else { return };
        let d = &self.devices[device];
        let (name, allowed) = (d.name, record.meta().creator == d.person || d.role.reviews());
        if self.edit(device, id, "voids", "voids (作废)".into(), |e| e.void_record("重复录入").map(|_| ())) {
            *self.devices[device].voids.entry(id).or_default() += 1;
        } else {
            assert!(!allowed, "{name}: a void the rules allow was refused on the phone\n{}", self.trace.join("\n"));
        }
    }

    fn member(&mut self, device: usize) {
        let Some((id, Record::Household(h))) = self.pick(device, Some(RecordKind::Household)) else { return };
        self.n += 1;
        let n = self.n;
        let existing = h.fields.members.choose(&mut self.rng).cloned();
        match (self.rng.random_range(0..3), existing) {
            (1, Some(mut m)) => {
                m.phone = format!("1390712{n:04}");
                if self.rng.random_bool(0.5) {
                    m.tags.push("低保".into());
                }
                let mid = m.id.clone();
                self.edit(device, id, "member edits", format!("edits member {mid}"), move |e| {
                    e.update_member(&mid, &m).map(|_| ())
                });
            }
            (2, Some(m)) => {
                let mid = m.id;
                self.edit(device, id, "member removals", format!("removes member {mid}"), move |e| {
                    e.remove_member(&mid).map(|_| ())
                });
            }
            _ => {
                let m = Member { name: format!("家属{n}"), relation: "子女".into(), ..Member::default() };
                let twice = self.rng.random_bool(0.3);
                let d = &mut self.devices[device];
                let added = d.phone().edit(id, |e| e.add_member(&m));
                match added {
                    Ok(mid) => {
                        d.note_made(id);
                        *self.did.entry("members added").or_default() += 1;
                        self.log(format!("{}: adds member {mid} to {id}", self.devices[device].name));
                        if twice {
                            let again = Member { id: mid.clone(), ..m };
                            self.edit(
                                device,
                                id,
                                "member double taps",
                                format!("adds member {mid} again (double tap)"),
                                move |e| e.add_member(&again).map(|_| ()),
                            );
                        }
                    }
                    Err(e) => {
                        self.refused_locally += 1;
                        self.log(format!("adding a member refused by the phone: {e}"));
                    }
                }
            }
        }
    }

    /// A case moved as the phone's role allows from where it stands: the
    /// supervisor hands it over (交办) to a grid manager, moves it on or (now
    /// and then) reopens it; a grid manager moves it to 办理中 or 已办结 —
    /// often the same case as another phone at the same time.
    fn move_case(&mut self, device: usize) {
        let Some((id, Record::Case(c))) = self.pick(device, Some(RecordKind::Case)) else { return };
        let role = self.devices[device].role;
        let moves = possible_moves(c.standing(), role);
        let forward: Vec<(StatusMove, CaseStatus)> =
            moves.iter().copied().filter(|m| m.0 == StatusMove::Advance).collect();
        // Mostly one step on (交办 before anything after it), sometimes a
        // jump, now and then a reopen.
        let choice = if self.rng.random_bool(0.6) && !forward.is_empty() {
            forward.first().copied()
        } else if self.rng.random_bool(0.6) && !forward.is_empty() {
            forward.choose(&mut self.rng).copied()
        } else {
            moves.choose(&mut self.rng).copied()
        };
        match choice {
            None => {}
            Some((StatusMove::Advance, CaseStatus::Assigned)) => {
                // 交办 picks an assignee among the people of the case's grid, as
                // the phone's directory lists them (kept across app restarts).
                let grid = c.meta.grid.clone();
                let candidates: Vec<PersonId> = self.devices[device]
                    .phone()
                    .replica
                    .directory()
                    .map(|d| d.people.iter().filter(|p| p.territory == grid && p.enabled).map(|p| p.id).collect())
                    .unwrap_or_default();
                let mut sorted = candidates;
                sorted.sort();
                let mut expected = self.assignees.to_vec();
                expected.sort();
                assert_eq!(
                    sorted,
                    expected,
                    "the directory lists the grid's two grid managers\n{}",
                    self.trace.join("\n")
                );
                let to = *sorted.choose(&mut self.rng).expect("assignee");
                self.edit(device, id, "交办 with an assignee", format!("交办 to {to}"), move |e| {
                    e.assign_case(to).map(|_| ())
                });
            }
            Some((StatusMove::Advance, to)) => {
                let label = if role.reviews() { "other status moves" } else { "grid managers' status moves" };
                self.edit(device, id, label, format!("moves to {to}"), move |e| e.advance_case(to).map(|_| ()));
            }
            Some((StatusMove::Reopen, to)) => {
                self.edit(device, id, "reopens", format!("reopens to {to}"), move |e| {
                    e.reopen_case(to, "复核未通过，退回重办").map(|_| ())
                });
            }
        }
    }

    fn follow_up(&mut self, device: usize) {
        let Some((id, _)) = self.pick(device, Some(RecordKind::Case)) else { return };
        self.edit(device, id, "follow-ups", "follows up".into(), |e| e.add_follow_up("已电话回访", None).map(|_| ()));
    }

    fn resolve_conflict(&mut self, device: usize) {
        let conflicted: Vec<(DocId, Record)> =
            self.devices[device].phone().replica.records().filter(|(_, r)| !r.conflicts().is_empty()).collect();
        let Some((id, record)) = conflicted.choose(&mut self.rng).cloned() else { return self.edit_fields(device) };
        let c = record.conflicts().choose(&mut self.rng).cloned().expect("a conflict");
        let value = c.values.choose(&mut self.rng).cloned().expect("a value");
        let field = c.field.clone();
        self.edit(device, id, "conflicts resolved", format!("chooses {value:?} for {field}"), move |e| {
            e.resolve_conflict(&field, &value).map(|_| ())
        });
    }

    /// Some work on `device`, as its role allows.
    fn work(&mut self, device: usize) {
        let supervisor = self.devices[device].role.reviews();
        let conflicted = self.devices[device].phone().replica.records().any(|(_, r)| !r.conflicts().is_empty());
        if conflicted && self.rng.random_bool(0.7) {
            return self.resolve_conflict(device);
        }
        match self.rng.random_range(0..100) {
            0..20 => self.open_form(device),
            20..30 => self.resubmit(device),
            30..50 => self.edit_fields(device),
            50..57 => self.void(device),
            57..72 => self.member(device),
            72..90 if supervisor => self.move_case(device),
            72..78 => self.move_case(device),
            78..85 => self.follow_up(device),
            _ => self.resolve_conflict(device),
        }
    }

    async fn sync(&mut self, device: usize) {
        match self.devices[device].exchange().await {
            Ok(r) => self.log(format!(
                "{}: syncs ({} acknowledged, {} received)",
                self.devices[device].name, r.acknowledged, r.received
            )),
            Err(e) => self.log(format!("{}: sync failed: {e}", self.devices[device].name)),
        }
    }

    /// A sync goes out; while it is on its way the person keeps working
    /// (a move made now meets the others' moves in the response before it
    /// goes up itself); then the response arrives.
    async fn sync_while_working(&mut self, device: usize) {
        let before = self.devices[device].outbox();
        let request = self.devices[device].phone().replica.build_request();
        self.log(format!("{}: a sync goes out; meanwhile:", self.devices[device].name));
        *self.did.entry("work while a sync was on its way").or_default() += 1;
        for _ in 0..self.rng.random_range(1..3) {
            if self.devices[device].role.reviews() || self.rng.random_bool(0.5) {
                self.move_case(device);
            } else {
                self.work(device);
            }
        }
        match self.devices[device].send(before, request).await {
            Ok(r) => self.log(format!(
                "{}: the response arrives ({} acknowledged, {} received)",
                self.devices[device].name, r.acknowledged, r.received
            )),
            Err(e) => self.log(format!("{}: sync failed: {e}", self.devices[device].name)),
        }
        // The note for the move, written on the case as it now reads (with
        // whatever the response brought), before the move itself went up.
        let waiting: Vec<DocId> = self.devices[device].outbox().into_keys().collect();
        let cases: Vec<DocId> = waiting
            .into_iter()
            .filter(|id| matches!(self.devices[device].phone().replica.record(*id), Some(Record::Case(_))))
            .collect();
        if let Some(&id) = cases.choose(&mut self.rng) {
            self.edit(device, id, "follow-ups after a merge", "follows up on the merged case".into(), |e| {
                e.add_follow_up("已处理，补记情况", None).map(|_| ())
            });
        }
    }

    async fn lose_response(&mut self, device: usize) {
        match self.devices[device].exchange_losing_response().await {
            Ok(()) => {
                self.lost_responses += 1;
                self.log(format!("{}: syncs, the response is lost", self.devices[device].name));
                // Work made between the lost response and the retry.
                for _ in 0..self.rng.random_range(0..3) {
                    self.work(device);
                }
            }
            Err(e) => self.log(format!("{}: sync failed: {e}", self.devices[device].name)),
        }
    }

    fn reopen(&mut self, device: usize) {
        let d = &mut self.devices[device];
        let phone = d.phone.take().expect("phone");
        d.phone = Some(phone.reopen().expect("the phone's storage reopens"));
        self.reopens += 1;
        self.log(format!("{}: the app is killed and opened again from storage", self.devices[device].name));
    }
}

/// Statistics of a run.
#[derive(Default)]
struct Tally {
    steps: u64,
    lost_responses: u64,
    reopens: u64,
    kills: u64,
    records: u64,
    voided: u64,
    refused_locally: u64,
    did: BTreeMap<&'static str, u64>,
}

/// Runs one case on `server`; returns its devices (for the store check) or the problems found.
async fn run_case(server: &mut Server, cast: &Cast, seed: u64, tally: &mut Tally) -> Result<Vec<Device>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["甲的手机1", "甲的手机2", "乙的手机", "主任的手机"];
    let roles = [Role::FieldStaff, Role::FieldStaff, Role::FieldStaff, Role::Supervisor];
    let people = [cast.a, cast.a, cast.b, cast.devices[3].person];
    let mut devices = Vec::new();
    for i in 0..4 {
        let phone = Phone::registered(&server.url, cast.devices[i].clone()).map_err(|e| e.to_string())?;
        devices.push(Device {
            name: names[i],
            phone: Some(phone),
            person: people[i],
            role: roles[i],
            made: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            refusals: Vec::new(),
            voids: BTreeMap::new(),
        });
    }
    for d in &mut devices {
        let phone = d.phone.as_mut().expect("phone");
        fetch_directory(phone, &server.url).await?;
    }
    let steps = rng.random_range(15..45);
    let mut day = Day {
        rng: StdRng::seed_from_u64(rng.random()),
        devices,
        grid: cast.grid.clone(),
        community: cast.community.clone(),
        assignees: [cast.a, cast.b],
        forms: Vec::new(),
        trace: vec![format!("case seed {seed}")],
        n: 0,
        lost_responses: 0,
        reopens: 0,
        refused_locally: 0,
        did: BTreeMap::new(),
    };
    for _ in 0..steps {
        let device = rng.random_range(0..4);
        match rng.random_range(0..100) {
            0..50 => day.work(device),
            50..55 => day.sync_while_working(device).await,
            55..72 => day.sync(device).await,
            72..89 => day.lose_response(device).await,
            89..98 => day.reopen(device),
            98 => {
                day.log("server: SIGKILL and restart".into());
                server.kill().await;
                server.up().await;
            }
            _ => {
                // The server killed while a phone's sync is under way (before,
                // during or after the server acts on it), still down for
                // another phone's sync; then up again.
                let after = Duration::from_micros(rng.random_range(0..4000));
                day.log(format!("server: SIGKILL {} µs into a sync", after.as_micros()));
                let kill = async {
                    tokio::time::sleep(after).await;
                    server.kill().await;
                };
                tokio::join!(day.sync(device), kill);
                day.sync(rng.random_range(0..4)).await;
                server.up().await;
            }
        }
    }
    tally.steps += steps;
    tally.lost_responses += day.lost_responses;
    tally.reopens += day.reopens;
    tally.refused_locally += day.refused_locally;
    for (k, n) in &day.did {
        *tally.did.entry(k).or_default() += n;
    }
    // Everything syncs: twice round, so every phone has every other's work.
    for _ in 0..2 {
        for d in day.devices.iter_mut() {
            d.settle().await.map_err(|e| format!("{e}\n{}", day.trace.join("\n")))?;
        }
    }
    let mut observer = Phone::registered(&server.url, cast.observer.clone()).map_err(|e| e.to_string())?;
    observer.sync().await.map_err(|e| format!("observer: {e}"))?;
    if std::env::var_os("GRIDSYNC_INTERLEAVING_TRACE").is_some() {
        println!("{}", day.trace.join("\n  "));
    }
    let problems = check_case(&day, &observer);
    if !problems.is_empty() {
        return Err(format!("{}\nsteps:\n  {}", problems.join("\n"), day.trace.join("\n  ")));
    }
    tally.records += observer.replica.records().count() as u64;
    *tally.did.entry("conflicts shown at the end").or_default() +=
        observer.replica.records().map(|(_, r)| r.conflicts().len() as u64).sum::<u64>();
    tally.voided += observer.replica.records().filter(|(_, r)| r.voided().is_some()).count() as u64;
    Ok(day.devices)
}

/// Every promise of a case, checked against a phone that signed in only at
/// the end (the server's copy); returns what is wrong, one sentence each.
fn check_case(day: &Day, observer: &Phone) -> Vec<String> {
    let mut problems = Vec::new();
    let held: BTreeSet<DocId> = observer.replica.document_ids().collect();
    let forms: BTreeSet<DocId> = day.forms.iter().map(|f| f.id).collect();
    if held != forms {
        problems.push(format!(
            "{} forms submitted, the server holds {} records: {} missing, {} unexpected (duplicates)",
            forms.len(),
            held.len(),
            forms.difference(&held).count(),
            held.difference(&forms).count()
        ));
    }
    for d in &day.devices {
        let phone = d.phone.as_ref().expect("phone");
        for (id, r) in &d.refusals {
            problems.push(format!("{}: record {id} refused by the server: {r}", d.name));
        }
        for r in phone.replica.rejections() {
            problems.push(format!("{}: shows a refusal of {}: {}", d.name, r.doc, r.rejection));
        }
        for (what, ledger) in [("acknowledged", &d.acknowledged), ("made", &d.made)] {
            for (id, hashes) in ledger {
                let on_server = observer.replica.document(*id);
                let missing = hashes.iter().filter(|h| on_server.is_none_or(|doc| doc.get_change_by_hash(h).is_none()));
                let missing = missing.count();
                if missing > 0 {
                    problems.push(format!("{}: {missing} {what} changes to record {id} are not on the server", d.name));
                }
            }
        }
        let ids: BTreeSet<DocId> = phone.replica.document_ids().collect();
        if ids != held {
            problems.push(format!("{}: holds {} records, the server {}", d.name, ids.len(), held.len()));
        }
        for id in ids.intersection(&held) {
            let (Some(mine), Some(theirs)) = (phone.replica.document(*id), observer.replica.document(*id)) else {
                continue;
            };
            let (mut a, mut b) = (mine.get_heads(), theirs.get_heads());
            a.sort();
            b.sort();
            if a != b {
                problems.push(format!("{}: record {id} has a different history than the server's", d.name));
            } else if phone.replica.record(*id) != observer.replica.record(*id) {
                problems.push(format!("{}: record {id} reads differently than the server's", d.name));
            }
        }
    }
    // Who each case was handed to (交办) reads as a name on every phone.
    for (id, record) in observer.replica.records() {
        let Record::Case(c) = record else { continue };
        let Some(assignee) = c.assignee() else { continue };
        for d in &day.devices {
            let phone = d.phone.as_ref().expect("phone");
            if phone.replica.person_name(assignee).is_none() {
                problems.push(format!("{}: case {id}'s assignee {assignee} has no name on the phone", d.name));
            }
        }
    }
    // Every void made is there, on the server's copy.
    let mut voids: BTreeMap<DocId, usize> = BTreeMap::new();
    for d in &day.devices {
        for (id, n) in &d.voids {
            *voids.entry(*id).or_default() += n;
        }
    }
    for (id, n) in voids {
        let got = observer.replica.record(id).map_or(0, |r| r.voids().len());
        if got != n {
            problems.push(format!("record {id}: {n} voids made, {got} on the server"));
        }
    }
    // A voided record counts in no report: the figures are those of the
    // records not voided, counted here by hand.
    let records: Vec<(DocId, Record)> = observer.replica.records().collect();
    let period = Period::new(0, i64::MAX);
    let now = gridsync_tests::now_ms();
    let figures = report(records.iter().map(|(id, r)| (*id, r)), &day.community, period, now).total.figures;
    let live: Vec<&Record> = records.iter().map(|(_, r)| r).filter(|r| r.voided().is_none()).collect();
    let count = |kind: RecordKind| live.iter().filter(|r| r.kind() == kind).count() as u64;
    let by_hand = [
        ("households", figures.households, count(RecordKind::Household)),
        ("visits", figures.visits, count(RecordKind::VisitLog)),
        ("cases_found", figures.cases_found, count(RecordKind::Case)),
        ("promises_made", figures.promises_made, count(RecordKind::Promise)),
    ];
    for (what, reported, live) in by_hand {
        if reported != live {
            problems.push(format!("report: {what} = {reported}, {live} records of that kind are not voided"));
        }
    }
    problems
}

/// A case's seed from the run's seed and its number (splitmix64).
fn case_seed(run: u64, n: u64) -> u64 {
    let mut z = run.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `seeds` as cases on one server; at the end the server is killed and
/// its store read directly: every acknowledged and every made change of every
/// case is there, nothing half-applied.
async fn run(seeds: &[u64]) -> Tally {
    let started = Instant::now();
    // In memory where the machine has it: a SIGKILL leaves the page cache to
    // the next process either way, and a store of thousands of cases is set
    // up without waiting on a disk's fsync for every device.
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("tmp");
    let data = dir.path().join("data");
    let casts = {
        let store = open_store(Backend::from_env(), &data);
        cast_cases(store.as_ref(), 0, seeds.len())
    };
    let mut server = Server::start(&data).await;
    let mut tally = Tally::default();
    let mut all_devices = Vec::new();
    for (n, (cast, &seed)) in casts.iter().zip(seeds).enumerate() {
        if n > 0 && n % 500 == 0 {
            println!("{n} cases in {:.0} s", started.elapsed().as_secs_f64());
        }
        match run_case(&mut server, cast, seed, &mut tally).await {
            Ok(mut devices) => {
                // Only the ledgers are kept for the store check at the end.
                for d in &mut devices {
                    d.phone = None;
                }
                all_devices.push(devices);
            }
            Err(e) => panic!("case seed {seed} failed (rerun: GRIDSYNC_INTERLEAVING_CASE={seed}):\n{e}"),
        }
    }
    server.kill().await;
    tally.kills = server.kills;
    println!("restarting the server took {:.1} s", server.down_for.as_secs_f64());
    let store = open_store(Backend::from_env(), &data);
    let (audit, docs) = audit_store(store.as_ref(), &ROOT.parse().expect("root"));
    assert!(audit.problems.is_empty(), "the store: {:?}", audit.problems);
    for devices in &all_devices {
        for d in devices {
            for (id, hashes) in d.acknowledged.iter().chain(&d.made) {
                let missing =
                    hashes.iter().filter(|h| docs.get(id).is_none_or(|doc| doc.get_change_by_hash(h).is_none()));
                assert_eq!(missing.count(), 0, "{}: changes to record {id} are not in the store", d.name);
            }
        }
    }
    assert_eq!(docs.len() as u64, tally.records, "the store holds exactly the records the phones made");
    println!(
        "{} cases, {} steps, {} lost responses, {} apps reopened, {} server SIGKILLs, {} records ({} voided), \
         {} edits the phones' own rules refused, in {:.1} s",
        seeds.len(),
        tally.steps,
        tally.lost_responses,
        tally.reopens,
        tally.kills,
        tally.records,
        tally.voided,
        tally.refused_locally,
        started.elapsed().as_secs_f64()
    );
    println!("work done: {:?}", tally.did);
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_field_days_with_lost_responses_and_restarts_lose_nothing_duplicate_nothing_and_converge() {
    let seeds: Vec<u64> = match std::env::var("GRIDSYNC_INTERLEAVING_CASE").ok().and_then(|s| s.trim().parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let cases = size_from_env("GRIDSYNC_INTERLEAVINGS", 32);
            let run = gridsync_tests::proxy::seed_from_env("GRIDSYNC_INTERLEAVINGS_SEED");
            (0..cases as u64).map(|n| case_seed(run, n)).collect()
        }
    };
    let tally = run(&seeds).await;
    assert!(tally.lost_responses > 0 && tally.records > 0, "the faults and the work happened");
}
