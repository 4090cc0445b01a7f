//! Every change a phone can make to a record, written so that merges keep the
//! domain's rules: text is edited by diff (concurrent edits interleave), lists
//! of entries only grow, objects are never replaced. Each edit is checked with
//! the same [`crate::rules`] the server applies before it is kept.

use super::members;
use super::*;
use crate::photos::NewPhoto;
use crate::roles::Author;
use crate::rules::{self, Rejection};
use crate::workflow::{CaseStatus, StatusEntry, StatusMove};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, AutomergeError, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use thiserror::Error;

/// Why an edit was not made; the document is unchanged.
#[derive(Debug, Error)]
pub enum EditError {
    /// The edit breaks a rule the server would also enforce.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The document is not the kind of record this edit is for.
    #[error("this edit applies to a {expected}, not a {found}")]
    WrongKind {
        /// The kind the edit needs.
        expected: RecordKind,
        /// The kind the document holds.
        found: RecordKind,
    },
    /// The document is not a valid record.
    #[error("record cannot be read: {0}")]
    Record(#[from] RecordError),
    /// Automerge refused an operation.
    #[error("document error: {0}")]
    Automerge(#[from] AutomergeError),
}

/// Creates a new record document by `author`, on a device whose Automerge actor
/// is `actor`, in `grid`, at `now` (Unix ms). `random` makes the id unique.
/// Checked with the same rules as the server before it is returned.
pub fn new_record(
    actor: ActorId,
    author: &Author,
    grid: &TerritoryPath,
    now: i64,
    random: [u8; 10],
    new: &NewRecord,
) -> Result<(DocId, Automerge), EditError> {
    let id = DocId::new_v7(u64::try_from(now).unwrap_or(0), random);
    Ok((id, new_record_with_id(id, actor, author, grid, now, new)?))
}

/// Creates the document of a new record whose id `id` the caller chose (a
/// form fixes it when it opens, so a repeated submit names the same record);
/// the id must be a UUID v7 ([`rules::check_new_id`]). Otherwise as [`new_record`].
pub fn new_record_with_id(
    id: DocId,
    actor: ActorId,
    author: &Author,
    grid: &TerritoryPath,
    now: i64,
    new: &NewRecord,
) -> Result<Automerge, EditError> {
    rules::check_new_id(&id)?;
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    tx.put(ROOT, "type", new.kind().as_str())?;
    tx.put(ROOT, "schema", SCHEMA_VERSION)?;
    tx.put(ROOT, "grid", grid.as_str())?;
    tx.put(ROOT, "creator", author.person.to_string())?;
    tx.put(ROOT, "created_at", ScalarValue::Timestamp(now))?;
    // Every object a record may hold is made with it, so that two phones never
    // create the same one concurrently (one of the two would be hidden).
    tx.put_object(ROOT, "voids", ObjType::List)?;
    match new {
        NewRecord::Household(f) => {
            tx.put_object(ROOT, super::members::MEMBERS_MAP, ObjType::Map)?;
            write_household(&mut tx, f, now)?
        }
        NewRecord::VisitLog(f) => {
            write_visit(&mut tx, f)?;
            tx.put_object(ROOT, "photos", ObjType::List)?;
        }
        NewRecord::Case(f) => {
            write_case(&mut tx, f)?;
            tx.put_object(ROOT, "status_log", ObjType::List)?;
            tx.put_object(ROOT, "follow_ups", ObjType::List)?;
            tx.put_object(ROOT, "photos", ObjType::List)?;
        }
        NewRecord::Promise(f) => {
            write_promise(&mut tx, f)?;
            tx.put_object(ROOT, "outcomes", ObjType::List)?;
        }
    }
    tx.commit_with(CommitOptions::default().with_time(now));
    rules::check_new(&doc, author)?;
    Ok(doc)
}

/// Creates a new household's document for a bulk import: the document
/// [`new_record_with_id`] makes for `NewRecord::Household(fields)` (the same
/// keys, objects, values and member ids; members without an id get one, an
/// identical member given twice is added once), written as one batch of
/// operations instead of field by field with a read before each write, then
/// checked once with [`rules::check_new`]. Returns the document and the record
/// as the rules read it, so the caller need not read it again.
pub fn new_household_in_one_batch(
    id: DocId,
    actor: ActorId,
    author: &Author,
    grid: &TerritoryPath,
    now: i64,
    fields: &HouseholdFields,
) -> Result<(Automerge, Record), EditError> {
    rules::check_new_id(&id)?;
    let batch = HouseholdBatch::new(fields, now);
    let doc = batch.write(actor, author, grid, now)?;
    let record = rules::check_new(&doc, author)?;
    Ok((doc, record))
}

/// Creates a new household's document for a bulk import without reading it
/// back: the document [`new_household_in_one_batch`] makes, and the same
/// verdict and record. When the fields as written are within every limit the
/// strict reader applies ([`reads_back_as_written`]), the record is the one
/// those fields make and the rules over a read record
/// ([`rules::check_new_record`]) are applied to it directly; otherwise (a field
/// too long, too many entries) this is [`new_household_in_one_batch`], whose
/// reader and rules give the verdict and its reason. `shared/tests/household_fast_path.rs`
/// shows over generated households, good and bad, that both accept the same
/// input and that [`read_record`] of the document gives the record returned.
pub fn new_imported_household(
    id: DocId,
    actor: ActorId,
    author: &Author,
    grid: &TerritoryPath,
    now: i64,
    fields: &HouseholdFields,
) -> Result<(Automerge, Record), EditError> {
    rules::check_new_id(&id)?;
    let batch = HouseholdBatch::new(fields, now);
    if !reads_back_as_written(grid, &batch) {
        return new_household_in_one_batch(id, actor, author, grid, now, fields);
    }
    let doc = batch.write(actor, author, grid, now)?;
    let meta = RecordMeta {
        kind: RecordKind::Household,
        schema: SCHEMA_VERSION,
        grid: grid.clone(),
        creator: author.person,
        created_at: now,
    };
    let record =
        Record::Household(Household { meta, fields: batch.fields_as_read(), voids: Vec::new(), conflicts: Vec::new() });
    rules::check_new_record(&record, author)?;
    Ok((doc, record))
}

/// A new household's members and tags as one batch writes them: each tag once
/// (as `put_set` writes a set), members as `members::write_all` adds them to an
/// empty household, by member id in the order the strict reader lists them.
struct HouseholdBatch<'f> {
    /// The fields given.
    fields: &'f HouseholdFields,
    /// Member id → the member's fields (their tags each once).
    members: std::collections::BTreeMap<String, (&'f Member, Vec<&'f str>)>,
    /// The household's tags, each once, in the order given.
    tags: Vec<&'f str>,
}

/// A set's entries once each, in the order given (as `put_set` writes them).
fn set_of(values: &[String]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if !seen.contains(&v.as_str()) {
            seen.push(v);
        }
    }
    seen
}

impl<'f> HouseholdBatch<'f> {
    fn new(fields: &'f HouseholdFields, now: i64) -> Self {
        // Members as `members::write_all` adds them to an empty household.
        let mut members: Vec<(String, &Member)> = Vec::new();
        for m in &fields.members {
            if m.id.is_empty() {
                let same = |(_, had): &(String, &Member)| {
                    (&had.name, &had.relation, &had.id_number, &had.phone)
                        == (&m.name, &m.relation, &m.id_number, &m.phone)
                };
                if !members.iter().any(same) {
                    members.push((members::new_member_id(now, members.len()), m));
                }
            } else if let Some(had) = members.iter_mut().find(|(id, _)| *id == m.id) {
                had.1 = m;
            } else if uuid::Uuid::parse_str(&m.id).is_ok() {
                members.push((m.id.clone(), m));
            }
        }
        Self {
            fields,
            members: members.into_iter().map(|(id, m)| (id, (m, set_of(&m.tags)))).collect(),
            tags: set_of(&fields.tags),
        }
    }

    /// The document: every key [`new_record_with_id`] writes, in one change.
    fn write(&self, actor: ActorId, author: &Author, grid: &TerritoryPath, now: i64) -> Result<Automerge, EditError> {
        use automerge::hydrate;
        let mut doc = Automerge::new().with_actor(actor);
        let encoding = doc.text_encoding();
        let str_value = |s: &str| hydrate::Value::Scalar(ScalarValue::Str(s.into()));
        let set =
            |values: &[&str]| hydrate::Value::List(values.iter().map(|v| str_value(v)).collect::<Vec<_>>().into());
        let mut by_id = std::collections::HashMap::new();
        for (member_id, (m, tags)) in &self.members {
            let mut map = std::collections::HashMap::from([("tags".to_string(), set(tags))]);
            for (key, value) in
                [("name", &m.name), ("relation", &m.relation), ("id_number", &m.id_number), ("phone", &m.phone)]
            {
                if !value.is_empty() {
                    map.insert(key.to_string(), str_value(value));
                }
            }
            by_id.insert(member_id.clone(), hydrate::Value::Map(map.into()));
        }
        let f = self.fields;
        let root: std::collections::HashMap<String, hydrate::Value> = [
            ("type", str_value(RecordKind::Household.as_str())),
            ("schema", hydrate::Value::Scalar(ScalarValue::Uint(SCHEMA_VERSION))),
            ("grid", str_value(grid.as_str())),
            ("creator", str_value(&author.person.to_string())),
            ("created_at", hydrate::Value::Scalar(ScalarValue::Timestamp(now))),
            ("voids", hydrate::Value::List(Vec::new().into())),
            (members::MEMBERS_MAP, hydrate::Value::Map(by_id.into())),
            ("address", str_value(&f.address)),
            ("head", str_value(&f.head)),
            ("phone", str_value(&f.phone)),
            ("id_number", str_value(&f.id_number)),
            ("notes", hydrate::Value::Text(hydrate::Text::new(encoding, &f.notes))),
            ("tags", set(&self.tags)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut tx = doc.transaction();
        tx.init_root_from_hydrate(&root.into())?;
        tx.commit_with(CommitOptions::default().with_time(now));
        Ok(doc)
    }
    /// The fields the strict reader reads from the document [`Self::write`]
    /// makes, when [`reads_back_as_written`] holds: members by id, tags once each.
    fn fields_as_read(&self) -> HouseholdFields {
        let owned = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<String>>();
        let f = self.fields;
        HouseholdFields {
            address: f.address.clone(),
            head: f.head.clone(),
            phone: f.phone.clone(),
            id_number: f.id_number.clone(),
            members: self
                .members
                .iter()
                .map(|(id, (m, tags))| Member {
                    id: id.clone(),
                    name: m.name.clone(),
                    relation: m.relation.clone(),
                    id_number: m.id_number.clone(),
                    phone: m.phone.clone(),
                    tags: owned(tags),
                })
                .collect(),
            tags: owned(&self.tags),
            notes: f.notes.clone(),
        }
    }
}

/// Whether the strict reader ([`read_record`]) reads back exactly what
/// [`HouseholdBatch::write`] writes into a household of `grid`: every text
/// within its limit ([`limits`]: the reader's own), every list within
/// [`limits::LIST_ENTRIES`] entries, the grid a grid. A sufficient condition
/// only: when it fails, the caller asks the reader itself, which gives the
/// verdict and names what is wrong, so this never refuses anything.
fn reads_back_as_written(grid: &TerritoryPath, batch: &HouseholdBatch<'_>) -> bool {
    let within = |s: &str, max: usize| s.len() <= max || s.chars().count() <= max;
    let short = |s: &str| within(s, limits::SHORT_CHARS);
    let number = |s: &str| within(s, limits::NUMBER_CHARS);
    let tags = |t: &[&str]| t.len() <= limits::LIST_ENTRIES && t.iter().all(|t| short(t));
    let f = batch.fields;
    // A path that parses is at most 5 segments of 32 characters: within the
    // reader's 200 for `grid`.
    grid.is_grid()
        && TerritoryPath::parse(grid.as_str()).is_ok_and(|g| g == *grid)
        && short(&f.address)
        && short(&f.head)
        && number(&f.phone)
        && number(&f.id_number)
        && within(&f.notes, limits::TEXT_CHARS)
        && tags(&batch.tags)
        && batch.members.len() <= limits::LIST_ENTRIES
        && batch
            .members
            .values()
            .all(|(m, t)| short(&m.name) && short(&m.relation) && number(&m.id_number) && number(&m.phone) && tags(t))
}

/// Makes checked edits to one record document on behalf of `author` at `now`.
pub struct Editor<'a> {
    doc: &'a mut Automerge,
    author: &'a Author,
    now: i64,
}

impl<'a> Editor<'a> {
    /// An editor over `doc`; the doc's actor must be the device's actor.
    pub fn new(doc: &'a mut Automerge, author: &'a Author, now: i64) -> Self {
        Self { doc, author, now }
    }

    /// The record as it reads now, before this editor's next edit.
    pub fn record(&self) -> Result<Record, RecordError> {
        read_record(self.doc)
    }

    /// Runs `f` on a fork, checks the result with the server's rules, and only
    /// then applies the change to the document. Returns the new change's hash.
    /// `f` is taken as `&dyn` so that this body is compiled once, not once
    /// per kind of edit (it weighs on the phone's WebAssembly).
    fn change(
        &mut self,
        f: &dyn Fn(&mut Transaction<'_>, &Record) -> Result<(), EditError>,
    ) -> Result<Option<ChangeHash>, EditError> {
        let before = read_record(self.doc)?;
        let mut fork = self.doc.fork();
        fork.set_actor(self.doc.get_actor().clone());
        let mut tx = fork.transaction();
        f(&mut tx, &before)?;
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(self.now));
        let Some(hash) = hash else { return Ok(None) };
        rules::check_update(self.doc, &fork, self.author)?;
        let change = fork.get_change_by_hash(&hash).ok_or(AutomergeError::Fail)?;
        self.doc.apply_changes([change])?;
        Ok(Some(hash))
    }

    fn expect(record: &Record, kind: RecordKind) -> Result<(), EditError> {
        if record.kind() == kind { Ok(()) } else { Err(EditError::WrongKind { expected: kind, found: record.kind() }) }
    }

    /// Replaces a household's editable fields (text merges by diff). Members
    /// listed are updated by id or added (one without an id is added unless an
    /// identical member is there); members not listed are kept.
    pub fn update_household(&mut self, fields: &HouseholdFields) -> Result<Option<ChangeHash>, EditError> {
        let now = self.now;
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Household)?;
            write_household(tx, fields, now)
        })
    }

    /// Adds a member to a household; returns the member's id (`member.id` if
    /// given, a new UUID otherwise). Adding again with the same id updates
    /// that member, so a member form submitted twice adds one member.
    pub fn add_member(&mut self, member: &Member) -> Result<String, EditError> {
        let id = if member.id.is_empty() {
            let seq = members::member_objects(&*self.doc, None).map_or(0, |m| m.len());
            members::new_member_id(self.now, seq)
        } else {
            member.id.clone()
        };
        let m = Member { id: id.clone(), ..member.clone() };
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Household)?;
            members::write_all(tx, std::slice::from_ref(&m), 0)
        })?;
        Ok(id)
    }

    /// Writes member `id`'s fields (name, relation, ID number, phone, tags):
    /// only what changed, so another phone's edits of other fields survive.
    pub fn update_member(&mut self, id: &str, member: &Member) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Household)?;
            members::update(tx, id, member)
        })
    }

    /// Removes member `id` from a household.
    pub fn remove_member(&mut self, id: &str) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Household)?;
            members::remove(tx, id)
        })
    }

    /// Replaces a visit log's editable fields (text merges by diff).
    pub fn update_visit(&mut self, fields: &VisitFields) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::VisitLog)?;
            write_visit(tx, fields)
        })
    }

    /// Replaces a case's editable fields (text merges by diff).
    pub fn update_case(&mut self, fields: &CaseFields) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Case)?;
            write_case(tx, fields)
        })
    }

    /// Replaces a promise's editable fields (its creator and reviewers only).
    pub fn update_promise(&mut self, fields: &PromiseFields) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Promise)?;
            write_promise(tx, fields)
        })
    }

    /// Writes the editable fields of `new` over this record, which must be of
    /// the same kind: what a repeated submit of a creation form does to the
    /// record its first submit made. Unchanged fields write nothing.
    pub fn update_fields(&mut self, new: &NewRecord) -> Result<Option<ChangeHash>, EditError> {
        match new {
            NewRecord::Household(f) => self.update_household(f),
            NewRecord::VisitLog(f) => self.update_visit(f),
            NewRecord::Case(f) => self.update_case(f),
            NewRecord::Promise(f) => self.update_promise(f),
        }
    }

    /// Appends a follow-up to a case; concurrent follow-ups from others all survive.
    pub fn add_follow_up(
        &mut self,
        note: &str,
        satisfaction: Option<Satisfaction>,
    ) -> Result<Option<ChangeHash>, EditError> {
        let entry =
            FollowUp { id: Uuid::new_v4(), by: self.author.person, at: self.now, note: note.into(), satisfaction };
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Case)?;
            append_follow_up(tx, &entry)
        })
    }

    /// Appends a follow-up to a case with photos of its own (each as
    /// [`Self::add_photos`] would attach it, to this follow-up), in one change;
    /// returns the follow-up's id.
    pub fn add_follow_up_with_photos(
        &mut self,
        note: &str,
        satisfaction: Option<Satisfaction>,
        photos: &[NewPhoto],
    ) -> Result<Uuid, EditError> {
        let entry =
            FollowUp { id: Uuid::new_v4(), by: self.author.person, at: self.now, note: note.into(), satisfaction };
        let refs: Vec<PhotoRef> =
            photos.iter().map(|p| self.photo_ref(&NewPhoto { follow_up: Some(entry.id), ..p.clone() })).collect();
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Case)?;
            append_follow_up(tx, &entry)?;
            refs.iter().try_for_each(|p| append_photo(tx, p))
        })?;
        Ok(entry.id)
    }

    /// Attaches photos to a visit log or a case (or, with `follow_up`, to one
    /// of a case's follow-ups), in one change. A photo already attached there
    /// (same SHA-256) is not attached again, so a repeated submit adds nothing.
    pub fn add_photos(&mut self, photos: &[NewPhoto]) -> Result<Option<ChangeHash>, EditError> {
        let refs: Vec<PhotoRef> = photos.iter().map(|p| self.photo_ref(p)).collect();
        self.change(&|tx, r| {
            let mut added: Vec<&PhotoRef> = Vec::new();
            for p in &refs {
                let there = |q: &PhotoRef| q.sha256 == p.sha256 && q.follow_up == p.follow_up;
                if !r.photos().iter().any(there) && !added.iter().any(|q| there(q)) {
                    append_photo(tx, p)?;
                    added.push(p);
                }
            }
            Ok(())
        })
    }

    fn photo_ref(&self, p: &NewPhoto) -> PhotoRef {
        PhotoRef {
            id: Uuid::new_v4(),
            sha256: p.sha256.clone(),
            size: p.size,
            mime: p.mime,
            taken_at: p.taken_at,
            location: p.location,
            by: self.author.person,
            at: self.now,
            follow_up: p.follow_up,
        }
    }

    /// Moves a case forward to `to` (which must be further than where it
    /// stands). A move to assigned (交办) names its assignee: [`Self::assign_case`].
    pub fn advance_case(&mut self, to: CaseStatus) -> Result<Option<ChangeHash>, EditError> {
        self.status_entry(StatusMove::Advance, to, None, None)
    }

    /// Moves a case forward to assigned (交办), handing it to `assignee`. The
    /// phone knows only that someone is named; the server checks that the
    /// person exists, is enabled and works where the case is.
    pub fn assign_case(&mut self, assignee: PersonId) -> Result<Option<ChangeHash>, EditError> {
        self.status_entry(StatusMove::Advance, CaseStatus::Assigned, None, Some(assignee))
    }

    /// Reopens a case back to `to`, with a reason; recorded, never silent.
    pub fn reopen_case(&mut self, to: CaseStatus, reason: &str) -> Result<Option<ChangeHash>, EditError> {
        self.status_entry(StatusMove::Reopen, to, Some(reason), None)
    }

    fn status_entry(
        &mut self,
        kind: StatusMove,
        to: CaseStatus,
        reason: Option<&str>,
        assignee: Option<PersonId>,
    ) -> Result<Option<ChangeHash>, EditError> {
        let (by, at) = (self.author.person, self.now);
        self.change(&|tx, r| {
            let Record::Case(case) = r else {
                return Err(EditError::WrongKind { expected: RecordKind::Case, found: r.kind() });
            };
            let epoch = case.standing().epoch + u32::from(kind == StatusMove::Reopen);
            let reason = reason.map(str::to_string);
            append_status_entry(tx, &StatusEntry { id: Uuid::new_v4(), kind, to, epoch, by, at, reason, assignee })
        })
    }

    /// Voids (作废) the record, with a reason: its creator, or a supervisor or
    /// administrator over its grid, may. The entry is appended; nothing is removed.
    pub fn void_record(&mut self, reason: &str) -> Result<Option<ChangeHash>, EditError> {
        let entry =
            VoidEntry { id: Uuid::new_v4(), by: self.author.person, at: self.now, reason: reason.trim().into() };
        self.change(&|tx, _| append_void(tx, &entry))
    }

    /// Chooses `value` for the single-valued `field` (as a [`FieldConflict`]
    /// names it), replacing every value written concurrently: the conflict is
    /// gone on every phone once this edit reaches it. Only those who may edit
    /// the record's fields may choose.
    pub fn resolve_conflict(&mut self, field: &str, value: &FieldValue) -> Result<Option<ChangeHash>, EditError> {
        self.change(&|tx, r| super::merge::write_chosen(tx, r, field, value))
    }

    /// Records whether a promise was kept.
    pub fn record_promise_outcome(&mut self, kept: bool, note: &str) -> Result<Option<ChangeHash>, EditError> {
        let entry =
            PromiseOutcome { id: Uuid::new_v4(), kept, by: self.author.person, at: self.now, note: note.into() };
        self.change(&|tx, r| {
            Self::expect(r, RecordKind::Promise)?;
            append_outcome(tx, &entry)
        })
    }
}

/// Appends a follow-up to the case's `follow_ups` list.
pub(super) fn append_follow_up(tx: &mut Transaction<'_>, f: &FollowUp) -> Result<(), EditError> {
    let list = existing(tx, "follow_ups", ObjType::List)?;
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map)?;
    tx.put(&entry, "id", f.id.to_string())?;
    tx.put(&entry, "by", f.by.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(f.at))?;
    tx.put(&entry, "note", f.note.as_str())?;
    if let Some(s) = f.satisfaction {
        tx.put(&entry, "satisfaction", s.as_str())?;
    }
    Ok(())
}

/// Appends a status move to the case's `status_log` list.
pub(super) fn append_status_entry(tx: &mut Transaction<'_>, e: &StatusEntry) -> Result<(), EditError> {
    let list = existing(tx, "status_log", ObjType::List)?;
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map)?;
    tx.put(&entry, "id", e.id.to_string())?;
    tx.put(&entry, "kind", if e.kind == StatusMove::Advance { "advance" } else { "reopen" })?;
    tx.put(&entry, "to", e.to.as_str())?;
    tx.put(&entry, "epoch", u64::from(e.epoch))?;
    tx.put(&entry, "by", e.by.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(e.at))?;
    if let Some(reason) = &e.reason {
        tx.put(&entry, "reason", reason.as_str())?;
    }
    if let Some(assignee) = &e.assignee {
        tx.put(&entry, "assignee", assignee.to_string())?;
    }
    Ok(())
}

/// Appends an outcome to the promise's `outcomes` list.
pub(super) fn append_outcome(tx: &mut Transaction<'_>, o: &PromiseOutcome) -> Result<(), EditError> {
    let list = existing(tx, "outcomes", ObjType::List)?;
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map)?;
    tx.put(&entry, "id", o.id.to_string())?;
    tx.put(&entry, "kept", o.kept)?;
    tx.put(&entry, "by", o.by.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(o.at))?;
    tx.put(&entry, "note", o.note.as_str())?;
    Ok(())
}

/// Appends a photo reference to the record's `photos` list (made if a record
/// from before photos has none).
pub(super) fn append_photo(tx: &mut Transaction<'_>, p: &PhotoRef) -> Result<(), EditError> {
    let list = existing(tx, "photos", ObjType::List)?;
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map)?;
    tx.put(&entry, "id", p.id.to_string())?;
    tx.put(&entry, "sha256", p.sha256.as_str())?;
    tx.put(&entry, "size", p.size)?;
    tx.put(&entry, "mime", p.mime.as_mime())?;
    tx.put(&entry, "taken_at", ScalarValue::Timestamp(p.taken_at))?;
    if let Some(at) = p.location {
        tx.put(&entry, "lat", at.lat)?;
        tx.put(&entry, "lon", at.lon)?;
        if let Some(acc) = at.accuracy_m {
            tx.put(&entry, "accuracy_m", acc)?;
        }
    }
    tx.put(&entry, "by", p.by.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(p.at))?;
    if let Some(f) = p.follow_up {
        tx.put(&entry, "follow_up", f.to_string())?;
    }
    Ok(())
}

/// Appends a void entry to the record's `voids` list (made if a record from
/// before voids has none).
pub(super) fn append_void(tx: &mut Transaction<'_>, v: &VoidEntry) -> Result<(), EditError> {
    let list = existing(tx, "voids", ObjType::List)?;
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map)?;
    tx.put(&entry, "id", v.id.to_string())?;
    tx.put(&entry, "by", v.by.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(v.at))?;
    tx.put(&entry, "reason", v.reason.as_str())?;
    Ok(())
}

/// The object at a root key, created (once) if absent.
pub(super) fn existing(tx: &mut Transaction<'_>, key: &str, ty: ObjType) -> Result<ObjId, EditError> {
    match tx.get(ROOT, key)? {
        Some((Value::Object(t), id)) if t == ty => Ok(id),
        Some(_) => Err(EditError::Record(RecordError::WrongType { field: key.into(), expected: "an object" })),
        None => Ok(tx.put_object(ROOT, key, ty)?),
    }
}

pub(super) fn put_str(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, value: &str) -> Result<(), EditError> {
    let same = matches!(tx.get(obj, key)?, Some((Value::Scalar(s), _)) if s.as_str() == Some(value));
    if !same {
        tx.put(obj, key, value)?;
    }
    Ok(())
}

fn put_opt_str(tx: &mut Transaction<'_>, key: &str, value: Option<String>) -> Result<(), EditError> {
    match value {
        Some(v) => put_str(tx, &ROOT, key, &v),
        None => {
            if tx.get(ROOT, key)?.is_some() {
                tx.delete(ROOT, key)?;
            }
            Ok(())
        }
    }
}

fn put_text(tx: &mut Transaction<'_>, key: &str, value: &str) -> Result<(), EditError> {
    let id = existing(tx, key, ObjType::Text)?;
    if tx.text(&id)? != value {
        tx.update_text(&id, value)?;
    }
    Ok(())
}

/// The strings of a list object (anything else reads as empty text).
fn strings_of(tx: &Transaction<'_>, list: &ObjId) -> Vec<String> {
    (0..tx.length(list))
        .map(|i| match tx.get(list, i) {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().unwrap_or_default().to_string(),
            _ => String::new(),
        })
        .collect()
}

/// Writes an ordered list of short entries by diff: the common start and end
/// stay, only the entries between are deleted and inserted, so another
/// phone's concurrent additions and removals elsewhere in the list survive.
pub(super) fn put_list(tx: &mut Transaction<'_>, list: &ObjId, values: &[String]) -> Result<(), EditError> {
    let current = strings_of(tx, list);
    let start = current.iter().zip(values).take_while(|(a, b)| a == b).count();
    let end = current[start..].iter().rev().zip(values[start..].iter().rev()).take_while(|(a, b)| a == b).count();
    for i in (start..current.len() - end).rev() {
        tx.delete(list, i)?;
    }
    for (offset, v) in values[start..values.len() - end].iter().enumerate() {
        tx.insert(list, start + offset, v.as_str())?;
    }
    Ok(())
}

/// Writes a set of tags: removes the tags not wanted (and repeats), adds the
/// missing ones at the end; tags added or removed concurrently elsewhere stay
/// added or removed. Readers take each tag once.
pub(super) fn put_set(tx: &mut Transaction<'_>, list: &ObjId, values: &[String]) -> Result<(), EditError> {
    let current = strings_of(tx, list);
    // A list of the tags kept, not a hash set: a few tags, and less
    // WebAssembly for the phone.
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in current.iter().enumerate().rev() {
        let first = current[..i].iter().all(|c| c != v);
        if !values.contains(v) || !first {
            tx.delete(list, i)?;
        } else {
            seen.push(v);
        }
    }
    let mut end = tx.length(list);
    for v in values {
        if !seen.contains(&v.as_str()) {
            seen.push(v);
            tx.insert(list, end, v.as_str())?;
            end += 1;
        }
    }
    Ok(())
}

pub(super) fn write_household(tx: &mut Transaction<'_>, f: &HouseholdFields, now: i64) -> Result<(), EditError> {
    put_str(tx, &ROOT, "address", &f.address)?;
    put_str(tx, &ROOT, "head", &f.head)?;
    put_str(tx, &ROOT, "phone", &f.phone)?;
    put_str(tx, &ROOT, "id_number", &f.id_number)?;
    put_text(tx, "notes", &f.notes)?;
    let tags = existing(tx, "tags", ObjType::List)?;
    put_set(tx, &tags, &f.tags)?;
    members::write_all(tx, &f.members, now)
}

pub(super) fn write_visit(tx: &mut Transaction<'_>, f: &VisitFields) -> Result<(), EditError> {
    put_opt_str(tx, "household", f.household.map(|h| h.to_string()))?;
    put_time(tx, "visited_at", Some(f.visited_at))?;
    put_opt_str(tx, "kind", f.kind.map(|k| k.as_str().to_string()))?;
    match f.location {
        Some(p) => {
            let loc = existing(tx, "location", ObjType::Map)?;
            // Only what changed is written: a rewrite of the same position
            // would compete with someone else's concurrent one.
            let now = |tx: &Transaction<'_>, key: &str| match tx.get(&loc, key) {
                Ok(Some((Value::Scalar(s), _))) => s.as_f64(),
                _ => None,
            };
            for (key, value) in [("lat", Some(p.lat)), ("lon", Some(p.lon)), ("accuracy_m", p.accuracy_m)] {
                match value {
                    Some(v) if now(tx, key) != Some(v) => tx.put(&loc, key, v)?,
                    None if tx.get(&loc, key)?.is_some() => tx.delete(&loc, key)?,
                    _ => {}
                }
            }
        }
        None => {
            // Emptied, not removed: removing the map would drop a concurrent edit
            // of it. A visit always has the map (made with it), so two phones
            // adding a position write into one map, never two.
            let loc = existing(tx, "location", ObjType::Map)?;
            for key in ["lat", "lon", "accuracy_m"] {
                if tx.get(&loc, key)?.is_some() {
                    tx.delete(&loc, key)?;
                }
            }
        }
    }
    put_text(tx, "notes", &f.notes)?;
    let concerns = existing(tx, "concerns", ObjType::List)?;
    put_list(tx, &concerns, &f.concerns)?;
    put_text(tx, "findings", &f.findings)?;
    Ok(())
}

pub(super) fn write_case(tx: &mut Transaction<'_>, f: &CaseFields) -> Result<(), EditError> {
    put_str(tx, &ROOT, "kind", f.kind.as_str())?;
    put_str(tx, &ROOT, "title", &f.title)?;
    put_text(tx, "description", &f.description)?;
    put_opt_str(tx, "household", f.household.map(|h| h.to_string()))?;
    put_opt_str(tx, "visit", f.visit.map(|v| v.to_string()))?;
    put_time(tx, "due_at", f.due_at)
}

pub(super) fn write_promise(tx: &mut Transaction<'_>, f: &PromiseFields) -> Result<(), EditError> {
    put_str(tx, &ROOT, "content", &f.content)?;
    put_opt_str(tx, "household", f.household.map(|h| h.to_string()))?;
    put_time(tx, "due_at", Some(f.due_at))
}

/// Writes an optional time (as a Timestamp) at a root key, only if it differs.
fn put_time(tx: &mut Transaction<'_>, key: &str, value: Option<i64>) -> Result<(), EditError> {
    let current = match tx.get(ROOT, key)? {
        Some((Value::Scalar(s), _)) if !s.is_null() => s.as_i64(),
        _ => None,
    };
    match value {
        Some(v) if current != Some(v) => {
            tx.put(ROOT, key, ScalarValue::Timestamp(v))?;
        }
        None if tx.get(ROOT, key)?.is_some() => tx.delete(ROOT, key)?,
        _ => {}
    }
    Ok(())
}
