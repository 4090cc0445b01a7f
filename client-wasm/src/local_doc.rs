//! One record document on the phone, kept as its stored bytes until first
//! needed: opening the app reads every record's kind but parses only the
//! documents a screen shows.

use crate::replica::ReplicaError;
use automerge::{ActorId, Automerge};
use gridsync_shared::records::RecordSummary;
use gridsync_shared::records::read_record;
use gridsync_shared::{DocId, Record, RecordKind};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, OnceCell};

/// What the phone knows of a record without parsing its document: enough to
/// pick records by kind and to find each household's last visit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DocHeader {
    pub(crate) kind: Option<RecordKind>,
    pub(crate) household: Option<DocId>,
    pub(crate) at: Option<i64>,
}

impl DocHeader {
    fn of(doc: &Automerge) -> Self {
        read_record(doc).map(|r| r.summary().into()).unwrap_or_default()
    }
}

impl From<RecordSummary> for DocHeader {
    fn from(s: RecordSummary) -> Self {
        DocHeader { kind: Some(s.kind), household: s.household, at: Some(s.at) }
    }
}

/// Stored form: format byte 1, the header's length (u16 LE), the header
/// (postcard), then `Automerge::save()`.
const FORMAT: u8 = 1;

/// A record document, loaded lazily.
pub(crate) struct LocalDoc {
    header: DocHeader,
    stored: Option<Vec<u8>>,
    actor: Option<ActorId>,
    doc: OnceCell<Option<Automerge>>,
    /// How many times the stored bytes were parsed (tests check that a
    /// screen's query leaves the records it does not show unparsed).
    parses: Cell<u32>,
}

fn corrupt(what: &str) -> ReplicaError {
    ReplicaError::Corrupt(format!("stored document: {what}"))
}

impl LocalDoc {
    /// A document in memory.
    pub(crate) fn new(doc: Automerge) -> Self {
        let actor = Some(doc.get_actor().clone());
        Self { header: DocHeader::of(&doc), stored: None, actor, doc: OnceCell::from(Some(doc)), parses: Cell::new(0) }
    }

    /// A document as stored, parsed on first use with `actor` as its actor.
    pub(crate) fn stored(value: Vec<u8>, actor: Option<ActorId>) -> Result<Self, ReplicaError> {
        let (body, _) = split(&value)?;
        let header = postcard::from_bytes(body).map_err(|_| corrupt("header"))?;
        Ok(Self { header, stored: Some(value), actor, doc: OnceCell::new(), parses: Cell::new(0) })
    }

    /// A document received from the server, kept as bytes (a saved document
    /// and/or change chunks) with the header the server sent, parsed on first use.
    pub(crate) fn received(header: DocHeader, body: &[u8], actor: Option<ActorId>) -> Self {
        Self { stored: Some(frame(&header, body)), header, actor, doc: OnceCell::new(), parses: Cell::new(0) }
    }

    /// True if the document is parsed in memory (else it is only bytes).
    pub(crate) fn is_parsed(&self) -> bool {
        matches!(self.doc.get(), Some(Some(_)))
    }

    /// Appends a saved document or change chunks to an unparsed document's
    /// bytes (Automerge loads the concatenation), refreshing the header if given.
    /// Returns false, changing nothing, if the document is parsed.
    pub(crate) fn append(&mut self, more: &[u8], header: Option<DocHeader>) -> bool {
        if self.is_parsed() {
            return false;
        }
        let Some(stored) = self.stored.as_mut() else { return false };
        match header {
            Some(h) if h != self.header => {
                let body = split(stored).map(|(_, b)| b.to_vec()).unwrap_or_default();
                let mut all = body;
                all.extend_from_slice(more);
                *stored = frame(&h, &all);
                self.header = h;
            }
            _ => stored.extend_from_slice(more),
        }
        true
    }

    /// The record's kind, known without parsing the document.
    pub(crate) fn kind(&self) -> Option<RecordKind> {
        self.header.kind
    }

    /// The record's kind, household and time: from the header, or — for the
    /// few documents stored without them (damaged or very old) — read from
    /// the document, parsing it. None if it cannot be read at all.
    pub(crate) fn summary(&self) -> Option<RecordSummary> {
        match self.header {
            DocHeader { kind: Some(kind), household, at: Some(at) } => Some(RecordSummary { kind, household, at }),
            _ => self.record().map(|r| r.summary()),
        }
    }

    /// How many times the stored bytes have been parsed.
    pub(crate) fn parses(&self) -> u32 {
        self.parses.get()
    }

    /// Parses the stored bytes with this phone's actor; None if damaged.
    fn load(&self) -> Option<Automerge> {
        let (_, bytes) = split(self.stored.as_deref()?).ok()?;
        self.parses.set(self.parses.get().saturating_add(1));
        let mut doc = Automerge::load(bytes).ok()?;
        if let Some(a) = &self.actor {
            doc.set_actor(a.clone());
        }
        Some(doc)
    }

    /// The document, parsed now if needed; None if its stored bytes are damaged.
    pub(crate) fn get(&self) -> Option<&Automerge> {
        self.doc.get_or_init(|| self.load()).as_ref()
    }

    /// Runs `f` on the document without keeping it parsed afterwards (a parsed
    /// record holds far more memory than its bytes); None if it is damaged.
    pub(crate) fn with_doc<T>(&self, f: impl FnOnce(&Automerge) -> T) -> Option<T> {
        if let Some(Some(doc)) = self.doc.get() {
            return Some(f(doc));
        }
        Some(f(&self.load()?))
    }

    /// The record as it reads now, without keeping the document parsed.
    pub(crate) fn record(&self) -> Option<Record> {
        self.with_doc(|d| read_record(d).ok()).flatten()
    }

    /// The document for changing; call [`Self::encode`] afterwards to refresh
    /// the header and get the bytes to store.
    pub(crate) fn get_mut(&mut self) -> Result<&mut Automerge, ReplicaError> {
        if self.get().is_none() {
            return Err(corrupt("cannot be read"));
        }
        self.stored = None;
        self.doc.get_mut().and_then(Option::as_mut).ok_or_else(|| corrupt("cannot be read"))
    }

    /// Sets the actor new changes are written with.
    pub(crate) fn set_actor(&mut self, actor: &ActorId) {
        self.actor = Some(actor.clone());
        if let Some(Some(doc)) = self.doc.get_mut() {
            doc.set_actor(actor.clone());
        }
    }

    /// The bytes to store (refreshing the header from the document if it changed).
    /// They are kept, so that [`Self::unload`] can drop the parsed document.
    pub(crate) fn encode(&mut self) -> Vec<u8> {
        if let Some(bytes) = &self.stored {
            return bytes.clone();
        }
        let Some(Some(doc)) = self.doc.get() else { return Vec::new() };
        self.header = DocHeader::of(doc);
        let out = frame(&self.header, &doc.save());
        self.stored = Some(out.clone());
        out
    }

    /// Drops the parsed document if its stored bytes are current, keeping
    /// only those (it is parsed again on next use).
    pub(crate) fn unload(&mut self) {
        if self.stored.is_some() {
            self.doc = OnceCell::new();
        }
    }
}

/// The stored form of a header and document bytes.
fn frame(header: &DocHeader, body: &[u8]) -> Vec<u8> {
    let header = postcard::to_allocvec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(3 + header.len() + body.len());
    out.push(FORMAT);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// Splits a stored value into its header bytes and document bytes.
fn split(value: &[u8]) -> Result<(&[u8], &[u8]), ReplicaError> {
    match value {
        [FORMAT, a, b, rest @ ..] => {
            let n = u16::from_le_bytes([*a, *b]) as usize;
            rest.split_at_checked(n).ok_or_else(|| corrupt("truncated"))
        }
        _ => Err(corrupt("unknown format")),
    }
}
