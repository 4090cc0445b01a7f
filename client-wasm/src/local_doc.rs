//! One record document on the phone, kept as its stored bytes until first
//! needed: opening the app reads every record's kind but parses only the
//! documents a screen shows.

use crate::replica::ReplicaError;
use automerge::{ActorId, Automerge};
use gridsync_shared::records::read_record;
use gridsync_shared::{DocId, Record, RecordKind};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;

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
        match read_record(doc) {
            Err(_) => DocHeader::default(),
            Ok(r) => {
                let (household, at) = match &r {
                    Record::Household(_) => (None, r.meta().created_at),
                    Record::VisitLog(v) => (v.fields.household, v.fields.visited_at),
                    Record::Case(c) => (c.fields.household, r.meta().created_at),
                    Record::Promise(p) => (p.fields.household, r.meta().created_at),
                };
                DocHeader { kind: Some(r.kind()), household, at: Some(at) }
            }
        }
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
}

fn corrupt(what: &str) -> ReplicaError {
    ReplicaError::Corrupt(format!("stored document: {what}"))
}

impl LocalDoc {
    /// A document in memory.
    pub(crate) fn new(doc: Automerge) -> Self {
        Self { header: DocHeader::of(&doc), stored: None, actor: None, doc: OnceCell::from(Some(doc)) }
    }

    /// A document as stored, parsed on first use with `actor` as its actor.
    pub(crate) fn stored(value: Vec<u8>, actor: Option<ActorId>) -> Result<Self, ReplicaError> {
        let (body, _) = split(&value)?;
        let header = postcard::from_bytes(body).map_err(|_| corrupt("header"))?;
        Ok(Self { header, stored: Some(value), actor, doc: OnceCell::new() })
    }

    /// The header, known without parsing the document.
    pub(crate) fn header(&self) -> &DocHeader {
        &self.header
    }

    /// The record's kind, known without parsing the document.
    pub(crate) fn kind(&self) -> Option<RecordKind> {
        self.header.kind
    }

    /// The document, parsed now if needed; None if its stored bytes are damaged.
    pub(crate) fn get(&self) -> Option<&Automerge> {
        self.doc
            .get_or_init(|| {
                let (_, bytes) = split(self.stored.as_deref()?).ok()?;
                let mut doc = Automerge::load(bytes).ok()?;
                if let Some(a) = &self.actor {
                    doc.set_actor(a.clone());
                }
                Some(doc)
            })
            .as_ref()
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
    pub(crate) fn encode(&mut self) -> Vec<u8> {
        if let Some(bytes) = &self.stored {
            return bytes.clone();
        }
        let Some(Some(doc)) = self.doc.get() else { return Vec::new() };
        self.header = DocHeader::of(doc);
        let header = postcard::to_allocvec(&self.header).unwrap_or_default();
        let mut out = Vec::with_capacity(3 + header.len() + 1024);
        out.push(FORMAT);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend(doc.save());
        out
    }
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
