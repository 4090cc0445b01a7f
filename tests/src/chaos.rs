//! Grid managers who make random edits and keep a ledger of every change they
//! made and every change the server acknowledged, and the checks that hold a
//! server's store to those ledgers: nothing acknowledged missing, nothing
//! half-applied, no edit lost, no record duplicated, everyone converged.

use crate::phone::{Phone, PhoneError};
use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use gridsync_client::SyncReport;
use gridsync_server::store::Store;
use gridsync_shared::records::{
    CaseFields, CaseKind, NewRecord, PromiseFields, Satisfaction, VisitFields, VisitKind, read_record,
};
use gridsync_shared::rules::Rejection;
use gridsync_shared::workflow::{CaseStatus, StatusMove, possible_moves};
use gridsync_shared::{DocId, Record, Role, TerritoryPath};
use rand::Rng;
use rand::seq::IndexedRandom;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Everything one phone did, as the grid manager would swear to it.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every change the phone made, per record.
    pub made: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    /// Changes that left the outbox after a successful response without
    /// their record being refused: the server said they are durable.
    pub acknowledged: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    /// Every refusal the server sent, with the record it concerned.
    pub rejections: Vec<(DocId, Rejection)>,
    /// Records this phone created.
    pub created: BTreeSet<DocId>,
    /// Follow-ups this phone added, per case.
    pub follow_ups: BTreeMap<DocId, usize>,
    /// Status moves (advances and reopens) this phone made, per case.
    pub status_moves: BTreeMap<DocId, usize>,
    /// Outcomes this phone recorded, per promise.
    pub outcomes: BTreeMap<DocId, usize>,
    /// Edits made (creations included).
    pub edits: u64,
    /// Edits the phone's own rules refused (e.g. a move the case had passed).
    pub refused_locally: u64,
    /// Exchanges that completed (response received and applied).
    pub exchanges_ok: u64,
    /// Exchanges that failed (network, server status, or a damaged response).
    pub exchanges_failed: u64,
    /// Exchanges that got no answer within [`UNANSWERED`] (counted in `exchanges_failed` too).
    pub unanswered: u64,
    /// Times the app was closed and opened again (the replica reopened from its storage).
    pub reopens: u64,
}

impl Ledger {
    /// How many changes the phone made.
    pub fn changes_made(&self) -> usize {
        self.made.values().map(BTreeSet::len).sum()
    }

    /// How many changes the server acknowledged.
    pub fn changes_acknowledged(&self) -> usize {
        self.acknowledged.values().map(BTreeSet::len).sum()
    }
}

/// A grid manager (or supervisor) with a phone, making random edits.
pub struct Worker {
    /// A name for messages.
    pub name: String,
    /// The phone, running the real client core.
    pub phone: Phone,
    /// What it did.
    pub ledger: Ledger,
    role: Role,
    cases: Vec<DocId>,
    visits: Vec<DocId>,
    promises: Vec<DocId>,
}

/// A phone's outbox: each document's changes waiting to be acknowledged.
pub fn outbox_of(phone: &Phone) -> BTreeMap<DocId, Vec<ChangeHash>> {
    phone.replica.outbox().map(|(id, hashes)| (id, hashes.to_vec())).collect()
}

/// Adds to `acknowledged` the changes an exchange acknowledged: those in the
/// outbox `before` it that left the outbox (`after`), except in documents the
/// server refused (`refused`).
pub fn record_acknowledged(
    acknowledged: &mut BTreeMap<DocId, BTreeSet<ChangeHash>>,
    before: BTreeMap<DocId, Vec<ChangeHash>>,
    after: &BTreeMap<DocId, Vec<ChangeHash>>,
    refused: &BTreeSet<DocId>,
) {
    for (id, hashes) in before {
        if refused.contains(&id) {
            continue;
        }
        let still = after.get(&id);
        let gone = hashes.into_iter().filter(|h| !still.is_some_and(|s| s.contains(h)));
        acknowledged.entry(id).or_default().extend(gone);
    }
}

/// Picks among the most recent items more often: recent records are the ones
/// a grid manager goes back to, and the ones whose acknowledgement may be lost.
fn recent<R: Rng>(rng: &mut R, items: &[DocId]) -> Option<DocId> {
    if items.is_empty() {
        return None;
    }
    let window = if rng.random_bool(0.6) { items.len().min(3) } else { items.len() };
    Some(items[items.len() - 1 - rng.random_range(0..window)])
}

impl Worker {
    /// A worker around a signed-in phone.
    pub fn new(name: impl Into<String>, phone: Phone) -> Worker {
        let role = phone.replica.identity().map_or(Role::FieldStaff, |i| i.role);
        Worker {
            name: name.into(),
            phone,
            ledger: Ledger::default(),
            role,
            cases: Vec::new(),
            visits: Vec::new(),
            promises: Vec::new(),
        }
    }

    /// The app closed and opened again: the replica is reopened from what its
    /// storage holds, so the outbox must come back from storage alone.
    pub fn reopen_app(self) -> Worker {
        let mut ledger = self.ledger;
        ledger.reopens += 1;
        let phone = self.phone.reopen().expect("the phone's storage reopens");
        Worker { phone, ledger, ..self }
    }

    /// Notes every change of `id` now in the outbox as made by this phone.
    fn note_made(&mut self, id: DocId) {
        let hashes: Vec<ChangeHash> =
            self.phone.replica.outbox().find(|(d, _)| *d == id).map(|(_, h)| h.to_vec()).unwrap_or_default();
        self.ledger.made.entry(id).or_default().extend(hashes);
        self.ledger.edits += 1;
    }

    fn create(&mut self, new: &NewRecord) -> Option<DocId> {
        match self.phone.create(new) {
            Ok(id) => {
                self.ledger.created.insert(id);
                self.note_made(id);
                Some(id)
            }
            Err(_) => {
                self.ledger.refused_locally += 1;
                None
            }
        }
    }

    /// Makes one random edit, as its role allows: field staff record visits,
    /// report cases, make promises, add follow-ups, move their cases on, amend
    /// their notes and record outcomes; supervisors follow up, move and reopen
    /// any case in their territory.
    pub fn random_edit<R: Rng>(&mut self, rng: &mut R) {
        let n = self.ledger.edits;
        if self.role != Role::FieldStaff {
            return self.review(rng);
        }
        match rng.random_range(0..100) {
            0..20 => {
                let fields = VisitFields {
                    visited_at: self.phone.clock,
                    kind: Some(VisitKind::Routine),
                    notes: format!("{}第{n}次走访，住户反映情况", self.name),
                    concerns: vec!["路灯不亮".into()],
                    ..VisitFields::default()
                };
                if let Some(id) = self.create(&NewRecord::VisitLog(fields)) {
                    self.visits.push(id);
                }
            }
            20..35 => {
                let fields = CaseFields {
                    kind: *[CaseKind::Dispute, CaseKind::Hazard, CaseKind::Request]
                        .choose(rng)
                        .unwrap_or(&CaseKind::Dispute),
                    title: format!("{}上报的第{n}件事", self.name),
                    description: "邻里纠纷，需调解".into(),
                    household: None,
                    visit: None,
                    due_at: None,
                };
                if let Some(id) = self.create(&NewRecord::Case(fields)) {
                    self.cases.push(id);
                }
            }
            35..40 => {
                let fields = PromiseFields {
                    content: format!("{}承诺第{n}项", self.name),
                    household: None,
                    due_at: self.phone.clock,
                };
                if let Some(id) = self.create(&NewRecord::Promise(fields)) {
                    self.promises.push(id);
                }
            }
            40..65 => {
                if let Some(case) = recent(rng, &self.cases) {
                    self.follow_up(case, n);
                }
            }
            65..77 => {
                if let Some(case) = recent(rng, &self.cases) {
                    self.move_case(rng, case, false);
                }
            }
            77..90 => {
                if let Some(visit) = recent(rng, &self.visits) {
                    self.amend_visit(visit, n);
                }
            }
            _ => {
                if let Some(promise) = recent(rng, &self.promises) {
                    let kept = rng.random_bool(0.7);
                    match self.phone.edit(promise, |e| e.record_promise_outcome(kept, "已回访")) {
                        Ok(Some(_)) => {
                            *self.ledger.outcomes.entry(promise).or_default() += 1;
                            self.note_made(promise);
                        }
                        _ => self.ledger.refused_locally += 1,
                    }
                }
            }
        }
    }

    fn review<R: Rng>(&mut self, rng: &mut R) {
        // A case among the records on the phone, recent ones more often (where
        // field staff are busy too); found by sampling, as parsing every record
        // per edit would make long runs quadratic.
        let ids: Vec<DocId> = self.phone.replica.document_ids().collect();
        let is_case = |id: &DocId| matches!(self.phone.replica.record(*id), Some(Record::Case(_)));
        let Some(case) = (0..10).filter_map(|_| recent(rng, &ids)).find(is_case) else { return };
        match rng.random_range(0..100) {
            0..40 => self.follow_up(case, self.ledger.edits),
            40..92 => self.move_case(rng, case, false),
            _ => self.move_case(rng, case, true),
        }
    }

    fn follow_up(&mut self, case: DocId, n: u64) {
        let note = format!("{}第{n}次跟进", self.name);
        match self.phone.edit(case, |e| e.add_follow_up(&note, Some(Satisfaction::Satisfied))) {
            Ok(Some(_)) => {
                *self.ledger.follow_ups.entry(case).or_default() += 1;
                self.note_made(case);
            }
            _ => self.ledger.refused_locally += 1,
        }
    }

    fn move_case<R: Rng>(&mut self, rng: &mut R, case: DocId, back: bool) {
        let Some(Record::Case(c)) = self.phone.replica.record(case) else { return };
        let wanted = if back { StatusMove::Reopen } else { StatusMove::Advance };
        let moves: Vec<_> = possible_moves(c.standing(), self.role).into_iter().filter(|(m, _)| *m == wanted).collect();
        let Some((_, to)) = moves.first().copied() else { return };
        // Usually one step on; sometimes a jump, as a supervisor closing at once.
        let to = if rng.random_bool(0.3) { moves.choose(rng).map_or(to, |(_, s)| *s) } else { to };
        let result = if back {
            self.phone.edit(case, |e| e.reopen_case(to, "核查未通过，重新办理"))
        } else if to == CaseStatus::Assigned {
            // 交办 names an assignee: here the mover themselves.
            let me = self.phone.replica.identity().map(|i| i.person);
            self.phone.edit(case, |e| match me {
                Some(me) => e.assign_case(me),
                None => e.advance_case(to),
            })
        } else {
            self.phone.edit(case, |e| e.advance_case(to))
        };
        match result {
            Ok(Some(_)) => {
                *self.ledger.status_moves.entry(case).or_default() += 1;
                self.note_made(case);
            }
            _ => self.ledger.refused_locally += 1,
        }
    }

    fn amend_visit(&mut self, visit: DocId, n: u64) {
        let Some(Record::VisitLog(v)) = self.phone.replica.record(visit) else { return };
        let mut fields = v.fields;
        fields.notes.push_str(&format!("；补记{n}"));
        match self.phone.edit(visit, |e| e.update_visit(&fields)) {
            Ok(Some(_)) => self.note_made(visit),
            _ => self.ledger.refused_locally += 1,
        }
    }

    /// One request and its response through the real client core, logging
    /// what the server acknowledged and refused. A failed exchange changes
    /// nothing on the phone.
    pub async fn exchange(&mut self) -> Result<SyncReport, PhoneError> {
        let before = outbox_of(&self.phone);
        let request = self.phone.replica.build_request();
        let answer = match tokio::time::timeout(UNANSWERED, self.phone.post_sync(&request)).await {
            Ok(answer) => answer,
            Err(_) => {
                self.ledger.unanswered += 1;
                Err(PhoneError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", UNANSWERED.as_secs()),
                )))
            }
        };
        let result = match answer {
            Ok(response) => {
                self.phone.clock += 1;
                self.phone.replica.apply_response(&response, self.phone.clock).map_err(PhoneError::from)
            }
            Err(e) => Err(e),
        };
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.ledger.exchanges_failed += 1;
                return Err(e);
            }
        };
        self.ledger.exchanges_ok += 1;
        let after = outbox_of(&self.phone);
        let refused: BTreeSet<DocId> = report.rejected.iter().map(|(id, _)| *id).collect();
        record_acknowledged(&mut self.ledger.acknowledged, before, &after, &refused);
        self.ledger.rejections.extend(report.rejected.iter().cloned());
        Ok(report)
    }

    /// Syncs until nothing waits on either side, retrying failed exchanges
    /// (a server restarting, a fault) until `deadline`.
    pub async fn settle(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            match self.exchange().await {
                Ok(report) if !report.more && report.pending == 0 => return Ok(()),
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("{}: could not finish syncing: {e}", self.name));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            if Instant::now() > deadline {
                return Err(format!("{}: still syncing at the deadline", self.name));
            }
        }
    }
}

/// How long a worker waits for a sync's answer before it gives up on it (a
/// server that keeps a request this long is stuck, or a proxy holds it).
pub const UNANSWERED: Duration = Duration::from_secs(60);

/// What a store audit found.
#[derive(Clone, Debug, Default)]
pub struct StoreAudit {
    /// Documents stored.
    pub docs: usize,
    /// Feed entries.
    pub feed_entries: usize,
    /// Changes in all stored documents.
    pub changes: usize,
    /// Everything found wrong, one sentence each.
    pub problems: Vec<String>,
}

/// Checks that nothing in `store` under `root` is half-applied: every document
/// loads and reads as a valid record of the kind and grid it is stored under;
/// every feed entry is in sequence order, names a stored document and carries
/// only changes that document holds; and every change of every document is
/// carried by some feed entry (so a phone following the feed misses nothing).
pub fn audit_store(store: &dyn Store, root: &TerritoryPath) -> (StoreAudit, BTreeMap<DocId, Automerge>) {
    let mut audit = StoreAudit::default();
    let mut docs = BTreeMap::new();
    for (id, stored) in store.docs_in_scope(root, None, usize::MAX).expect("list documents") {
        let doc = match Automerge::load(&stored.bytes) {
            Ok(d) => d,
            Err(e) => {
                audit.problems.push(format!("record {id}: stored document does not load: {e}"));
                continue;
            }
        };
        match read_record(&doc) {
            Ok(r) if r.kind() == stored.kind && r.meta().grid == stored.grid => {}
            Ok(r) => audit.problems.push(format!(
                "record {id}: stored as {:?} in {} but reads as {:?} in {}",
                stored.kind,
                stored.grid,
                r.kind(),
                r.meta().grid
            )),
            Err(e) => audit.problems.push(format!("record {id}: does not read as a valid record: {e}")),
        }
        audit.changes += doc.get_changes(&[]).len();
        docs.insert(id, doc);
    }
    audit.docs = docs.len();
    let mut in_feed: BTreeMap<DocId, BTreeSet<ChangeHash>> = BTreeMap::new();
    let mut last_seq = 0;
    for entry in store.feed_after(root, 0, usize::MAX).expect("read feed") {
        audit.feed_entries += 1;
        if entry.seq <= last_seq {
            audit.problems.push(format!("feed entry {} follows {last_seq}", entry.seq));
        }
        last_seq = entry.seq;
        let Some(doc) = docs.get(&entry.doc) else {
            audit.problems.push(format!("feed entry {} names record {} which is not stored", entry.seq, entry.doc));
            continue;
        };
        for raw in &entry.changes {
            match Change::from_bytes(raw.clone()) {
                Ok(c) if doc.get_change_by_hash(&c.hash()).is_some() => {
                    in_feed.entry(entry.doc).or_default().insert(c.hash());
                }
                Ok(c) => audit.problems.push(format!(
                    "feed entry {} carries change {} which record {} does not hold",
                    entry.seq,
                    c.hash(),
                    entry.doc
                )),
                Err(e) => audit.problems.push(format!("feed entry {} carries a damaged change: {e}", entry.seq)),
            }
        }
    }
    for (id, doc) in &docs {
        let fed = in_feed.get(id);
        let unfed = doc.get_changes(&[]).iter().filter(|c| !fed.is_some_and(|f| f.contains(&c.hash()))).count();
        if unfed > 0 {
            audit.problems.push(format!("record {id}: {unfed} changes are in the document but in no feed entry"));
        }
    }
    (audit, docs)
}

/// Holds `docs` (the server's documents) to the workers' ledgers; returns
/// every broken promise, one sentence each: an acknowledged change missing,
/// a change made but not on the server (an edit lost), a refusal, a record
/// missing or created more than once, a follow-up, status move or outcome
/// count that differs from what was made.
pub fn check_ledgers(docs: &BTreeMap<DocId, Automerge>, workers: &[&Worker]) -> Vec<String> {
    let mut problems = Vec::new();
    let has = |id: &DocId, h: &ChangeHash| docs.get(id).is_some_and(|d| d.get_change_by_hash(h).is_some());
    for w in workers {
        for (id, hashes) in &w.ledger.acknowledged {
            let missing = hashes.iter().filter(|h| !has(id, h)).count();
            if missing > 0 {
                problems
                    .push(format!("{}: {missing} acknowledged changes to record {id} are not on the server", w.name));
            }
        }
        for (id, hashes) in &w.ledger.made {
            let missing = hashes.iter().filter(|h| !has(id, h)).count();
            if missing > 0 {
                problems.push(format!("{}: {missing} changes made to record {id} never reached the server", w.name));
            }
        }
        for (id, r) in &w.ledger.rejections {
            problems.push(format!("{}: record {id} refused: {r}", w.name));
        }
    }
    let created: Vec<DocId> = workers.iter().flat_map(|w| w.ledger.created.iter().copied()).collect();
    let distinct: BTreeSet<DocId> = created.iter().copied().collect();
    if distinct.len() != created.len() {
        problems.push(format!("{} records created, {} distinct ids", created.len(), distinct.len()));
    }
    let stored: BTreeSet<DocId> = docs.keys().copied().collect();
    if stored != distinct {
        problems.push(format!(
            "the server holds {} records, the phones created {}: {} missing, {} unexpected",
            stored.len(),
            distinct.len(),
            distinct.difference(&stored).count(),
            stored.difference(&distinct).count()
        ));
    }
    let sum = |f: fn(&Ledger) -> &BTreeMap<DocId, usize>| {
        let mut total: BTreeMap<DocId, usize> = BTreeMap::new();
        for w in workers {
            for (id, n) in f(&w.ledger) {
                *total.entry(*id).or_default() += n;
            }
        }
        total
    };
    let (follow_ups, moves, outcomes) = (sum(|l| &l.follow_ups), sum(|l| &l.status_moves), sum(|l| &l.outcomes));
    for (id, doc) in docs {
        match read_record(doc) {
            Ok(Record::Case(c)) => {
                let (f, m) = (follow_ups.get(id).copied().unwrap_or(0), moves.get(id).copied().unwrap_or(0));
                if c.follow_ups.len() != f || c.status_log.len() != m {
                    problems.push(format!(
                        "case {id}: {} follow-ups and {} status moves on the server, {f} and {m} made",
                        c.follow_ups.len(),
                        c.status_log.len()
                    ));
                }
            }
            Ok(Record::Promise(p)) => {
                let o = outcomes.get(id).copied().unwrap_or(0);
                if p.outcomes.len() != o {
                    problems.push(format!("promise {id}: {} outcomes on the server, {o} made", p.outcomes.len()));
                }
            }
            _ => {}
        }
    }
    problems
}

/// Compares a phone with the server's documents in the phone's own territory:
/// the same records, each with the same history (heads) and content. Returns
/// what differs, one sentence each.
pub fn check_converged(docs: &BTreeMap<DocId, Automerge>, store: &dyn Store, worker: &Worker) -> Vec<String> {
    let scope = worker.phone.grid();
    let ids: BTreeSet<DocId> =
        store.docs_in_scope(&scope, None, usize::MAX).expect("list documents").into_iter().map(|(id, _)| id).collect();
    let phone_ids: BTreeSet<DocId> = worker.phone.replica.document_ids().collect();
    let mut problems = Vec::new();
    if ids != phone_ids {
        problems.push(format!(
            "{}: holds {} records, the server {} in {scope}: {} missing on the phone, {} only on the phone",
            worker.name,
            phone_ids.len(),
            ids.len(),
            ids.difference(&phone_ids).count(),
            phone_ids.difference(&ids).count()
        ));
    }
    for id in ids.intersection(&phone_ids) {
        let (Some(server), Some(phone)) = (docs.get(id), worker.phone.replica.document(*id)) else {
            problems.push(format!("{}: record {id} cannot be read", worker.name));
            continue;
        };
        let (mut a, mut b) = (server.get_heads(), phone.get_heads());
        a.sort();
        b.sort();
        if a != b {
            problems.push(format!("{}: record {id} has a different history than the server's", worker.name));
        } else if server.hydrate(None) != phone.hydrate(None) {
            problems.push(format!("{}: record {id} reads differently than the server's", worker.name));
        }
    }
    problems
}

/// Panics listing `problems` (the first 30 of them) if there are any.
pub fn assert_no_problems(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(30).map(String::as_str).collect();
        panic!("{what}: {} problems:\n  {}", problems.len(), shown.join("\n  "));
    }
}
