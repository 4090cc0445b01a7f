//! The sync engine, sans-IO: [`Replica::build_request`] gives the bytes of the
//! next sync request, [`Replica::apply_response`] takes the server's answer.
//! The caller moves the bytes and retries freely: a request can be sent again
//! after a lost response and nothing is duplicated or lost.

use crate::local_doc::{DocHeader, LocalDoc};
use crate::replica::{RejectedRecord, Replica, ReplicaError, summarize};
use crate::storage::{Storage, StoreOp};
use automerge::{Automerge, ReadDoc};
use gridsync_shared::DocId;
use gridsync_shared::protocol::{
    self, DEFAULT_PAGE_BYTES, DocBody, DocPush, PUSH_BUDGET_BYTES, PushOutcome, SyncRequest, SyncResponse,
};
use gridsync_shared::records::{RecordKind, read_record};
use gridsync_shared::rules::{RejectReason, Rejection};

/// Where the phone remembers that the server was restored and its own
/// changes are being sent again.
pub(crate) const RESTORED_KEY: &str = "restored";

/// What one applied sync response did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    /// Documents whose pushed changes the server stored (or already had).
    pub acknowledged: usize,
    /// Documents the server refused, with reasons.
    pub rejected: Vec<(DocId, Rejection)>,
    /// Documents received or updated from the server.
    pub received: usize,
    /// True if the server has more: sync again now.
    pub more: bool,
    /// Local changes still waiting (more than one request's worth, or made meanwhile).
    pub pending: usize,
    /// Records written again under this device's actor because the server
    /// refused changes made by the phone's earlier device; they go up next.
    pub reauthored: usize,
    /// Refused records whose other work (follow-ups, photos, field edits) the
    /// phone kept without the refused part; it goes up next.
    pub salvaged: usize,
    /// Records that others' changes reached in this response (noted, with
    /// the time, for [`Replica::changed_since`]).
    pub changed_by_others: Vec<DocId>,
}

impl SyncReport {
    /// True if another request should follow at once.
    pub fn needs_another_round(&self) -> bool {
        self.more || self.reauthored > 0 || self.salvaged > 0 || self.pending > 0 && self.acknowledged > 0
    }
}

impl<S: Storage> Replica<S> {
    /// Builds the next sync request: the cursor and as many unacknowledged
    /// changes as fit one request's push budget.
    pub fn build_request(&mut self) -> Vec<u8> {
        self.build_request_with_page(DEFAULT_PAGE_BYTES)
    }

    /// Like [`Self::build_request`], asking for response pages of `page_bytes`.
    pub fn build_request_with_page(&mut self, page_bytes: u32) -> Vec<u8> {
        let mut push = Vec::new();
        let mut budget = PUSH_BUDGET_BYTES;
        self.in_flight.clear();
        // Records go up before the records that reference them (households,
        // then visit logs, then cases and promises), whatever the phone's clock
        // made of their ids: the server checks that a reference exists.
        let rank = |id: &DocId| match self.docs.get(id).and_then(LocalDoc::kind) {
            Some(RecordKind::Household) => 0,
            Some(RecordKind::VisitLog) => 1,
            _ => 2,
        };
        // The outbox is in id order: one pass per rank orders by (rank, id)
        // without a sort (each sorted type adds its own sort code to the wasm).
        let order = (0..3).flat_map(|r| self.outbox.iter().filter(move |(id, _)| rank(id) == r));
        for (id, hashes) in order {
            let kept: Option<Vec<Vec<u8>>> = hashes.iter().map(|h| self.outbox_bytes.get(h).cloned()).collect();
            let Some(changes) = kept.or_else(|| {
                self.docs.get(id).and_then(|d| {
                    d.with_doc(|doc| {
                        hashes
                            .iter()
                            .filter_map(|h| doc.get_change_by_hash(h))
                            .map(|c| c.raw_bytes().to_vec())
                            .collect::<Vec<Vec<u8>>>()
                    })
                })
            }) else {
                continue;
            };
            let size: usize = changes.iter().map(Vec::len).sum();
            if size > budget && !push.is_empty() {
                break;
            }
            budget = budget.saturating_sub(size);
            self.in_flight.insert(*id, hashes.clone());
            push.push(DocPush { doc: *id, changes });
            if push.len() >= protocol::MAX_PUSH_DOCS {
                break;
            }
        }
        protocol::encode(&SyncRequest { cursor: self.cursor.clone(), push, max_response_bytes: page_bytes })
    }

    /// Applies the server's response to the last request built, at `now` (Unix ms).
    /// Acknowledged changes leave the outbox; refused documents return to the
    /// server's version and are listed with their reasons; received documents
    /// merge in; the cursor advances only once everything is saved.
    ///
    /// Every record that others' changes reached is noted with `now` for
    /// [`Replica::changed_since`]: the feed's changes (the server never sends
    /// a device its own back) that the phone did not already hold. Whole
    /// documents (a new phone's first download, the server's copy after a
    /// refusal) are not news, and are not noted.
    pub fn apply_response(&mut self, bytes: &[u8], now: i64) -> Result<SyncReport, ReplicaError> {
        let response: SyncResponse = protocol::decode(bytes)?;
        let mut report = SyncReport { more: response.more, ..SyncReport::default() };
        let mut touched: Vec<DocId> = Vec::new();
        // The server sends its copy of a record with a refusal of it.
        // (Inserted one by one, the last copy of a record winning as with
        // `collect`, which would sort them first: more sort code in the wasm.)
        let mut server_copies: std::collections::BTreeMap<DocId, &[u8]> = std::collections::BTreeMap::new();
        for u in &response.updates {
            if let DocBody::Snapshot(bytes) = &u.body {
                server_copies.insert(u.doc, bytes.as_slice());
            }
        }

        for result in response.results {
            let id = result.doc;
            match result.outcome {
                PushOutcome::Accepted | PushOutcome::Duplicate => {
                    if let Some(sent) = self.in_flight.remove(&id) {
                        if let Some(outbox) = self.outbox.get_mut(&id) {
                            outbox.retain(|h| !sent.contains(h));
                            for h in &sent {
                                self.outbox_bytes.remove(h);
                            }
                            if outbox.is_empty() {
                                self.outbox.remove(&id);
                            }
                        }
                        // A refusal whose kept work this was stays shown until dismissed.
                        if self.rejected.get(&id).is_some_and(|r| r.kept.is_none()) {
                            self.rejected.remove(&id);
                        }
                        report.acknowledged += 1;
                        touched.push(id);
                    }
                }
                PushOutcome::Rejected(rejection) => {
                    if self.restored && rejection.reason == RejectReason::MissingDependencies {
                        // After a restore the server may lack another phone's
                        // changes this work builds on, until that phone sends
                        // them again: the work waits, it is not dropped.
                        self.in_flight.remove(&id);
                        continue;
                    }
                    if rejection.reason == RejectReason::WrongActor
                        && self.reauthor(id, server_copies.get(&id).copied(), now)?
                    {
                        report.reauthored += 1;
                        touched.push(id);
                        continue;
                    }
                    let kind = self.docs.get(&id).and_then(LocalDoc::kind);
                    // What was written with the refused part (a follow-up beside a
                    // refused 交办) is kept and goes up again, without that part.
                    let summary = self.docs.get(&id).and_then(LocalDoc::get).and_then(|d| read_record(d).ok());
                    let kept = match rejection.reason {
                        RejectReason::WrongActor | RejectReason::Malformed => None,
                        _ => self.salvage(id, server_copies.get(&id).copied(), now)?,
                    };
                    let (summary, kept) = match kept {
                        Some(carried) => {
                            report.salvaged += 1;
                            (summary.map(|r| summarize(&r)).unwrap_or_default(), Some(carried.describe_zh()))
                        }
                        None => (self.roll_back(id)?, None),
                    };
                    self.rejected.insert(
                        id,
                        RejectedRecord { doc: id, kind, summary, rejection: rejection.clone(), at: now, kept },
                    );
                    report.rejected.push((id, rejection));
                    touched.push(id);
                }
            }
        }

        for update in response.updates {
            let id = update.doc;
            let actor = self.identity.as_ref().and_then(|i| gridsync_shared::ids::actor_from_hex(&i.actor));
            let header = update.summary.map(DocHeader::from);
            let local = self.docs.get_mut(&id);
            match update.body {
                DocBody::Snapshot(bytes) => {
                    crate::chunks::check(&bytes).map_err(|e| ReplicaError::Corrupt(format!("record {id}: {e}")))?;
                    match (local, header) {
                        // Others' records are kept as received and parsed when first opened.
                        (Some(local), header) if !local.is_parsed() => {
                            local.append(&bytes, header);
                        }
                        (None, Some(header)) => {
                            self.docs.insert(id, LocalDoc::received(header, &bytes, actor));
                        }
                        (Some(local), _) => {
                            let doc = local.get_mut()?;
                            doc.load_incremental(&bytes).map_err(|e| ReplicaError::Corrupt(e.to_string()))?;
                        }
                        (None, None) => {
                            let mut doc = Automerge::load(&bytes).map_err(|e| ReplicaError::Corrupt(e.to_string()))?;
                            if let Some(a) = actor {
                                doc.set_actor(a);
                            }
                            self.docs.insert(id, LocalDoc::new(doc));
                        }
                    }
                }
                DocBody::Changes(raw) => {
                    let mut news = true;
                    let unparsed = match &local {
                        Some(l) => !l.is_parsed(),
                        None => header.is_some(),
                    };
                    if unparsed {
                        // Kept as bytes: checked for damage now, parsed when first opened.
                        for change in &raw {
                            crate::chunks::check(change)
                                .map_err(|e| ReplicaError::Corrupt(format!("record {id}: {e}")))?;
                        }
                    }
                    match (local, header) {
                        (Some(local), header) if unparsed => {
                            local.append(&raw.concat(), header);
                        }
                        (None, Some(header)) => {
                            self.docs.insert(id, LocalDoc::received(header, &raw.concat(), actor));
                        }
                        (local, _) => {
                            // Parsing checks every change (format and checksum) before any is applied.
                            let changes = raw
                                .into_iter()
                                .map(gridsync_shared::protocol::parse_change)
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(|e| ReplicaError::Corrupt(e.to_string()))?;
                            let local = match local {
                                Some(l) => l,
                                None => self.docs.entry(id).or_insert_with(|| {
                                    let mut d = Automerge::new();
                                    if let Some(a) = actor {
                                        d.set_actor(a);
                                    }
                                    LocalDoc::new(d)
                                }),
                            };
                            let doc = local.get_mut()?;
                            let before = doc.get_heads();
                            doc.apply_changes(changes).map_err(|e| ReplicaError::Corrupt(e.to_string()))?;
                            news = doc.get_heads() != before;
                        }
                    }
                    if news {
                        report.changed_by_others.push(id);
                    }
                }
            }
            report.received += 1;
            touched.push(id);
        }
        self.changed.note(&report.changed_by_others, now);

        let mut touched = crate::order::sorted_by_key(touched, |id| {
            let mut k = [0u8; 28];
            k[..16].copy_from_slice(id.0.as_bytes());
            k
        });
        touched.dedup();
        self.cursor = Some(response.cursor);
        self.mark_synced(now);
        self.save_docs(&touched, true)?;
        report.pending = self.pending_changes();
        if self.restored && report.pending == 0 {
            self.storage.commit(vec![StoreOp::Delete { key: RESTORED_KEY.into() }])?;
            self.restored = false;
        }
        if self.scope_cleanup {
            self.drop_out_of_scope()?;
        }
        Ok(report)
    }
}

impl<S: Storage> Replica<S> {
    /// The server was restored from a backup (it answered a sync with 409
    /// `store_restored` and `cursor` in base64): changes it acknowledged after
    /// that backup are gone from it, though this phone holds them. Every
    /// change this device made goes back into the outbox, in causal order
    /// (the server counts those it has as duplicates), and sync goes on from
    /// `cursor` — not from the start: records are not downloaded again. Until
    /// the outbox is empty, a push refused for missing dependencies (work on
    /// another phone's change the server lost, until that phone resends it)
    /// waits instead of being dropped. Saved before it returns; returns how
    /// many changes wait now.
    pub fn store_restored(&mut self, cursor_base64: &str) -> Result<usize, ReplicaError> {
        let cursor = decode_base64(cursor_base64)
            .ok_or_else(|| ReplicaError::Corrupt("the server's restored cursor is not base64".into()))?;
        let actor = self.actor().ok_or(ReplicaError::NotSignedIn)?;
        let mut touched = Vec::new();
        for (id, local) in &self.docs {
            let waiting = self.outbox.get(id).map(Vec::as_slice).unwrap_or_default();
            let resend = local.with_doc(|doc| {
                let all = doc.get_changes(&[]);
                if !all.iter().any(|c| c.actor_id() == &actor) {
                    return None;
                }
                // In causal order: this device's changes and whatever waited already.
                Some(
                    all.iter()
                        .filter(|c| c.actor_id() == &actor || waiting.contains(&c.hash()))
                        .map(|c| c.hash())
                        .collect::<Vec<_>>(),
                )
            });
            if let Some(Some(hashes)) = resend {
                touched.push((*id, hashes));
            }
        }
        let ids: Vec<DocId> = touched.iter().map(|(id, _)| *id).collect();
        for (id, hashes) in touched {
            self.outbox.insert(id, hashes);
        }
        self.in_flight.clear();
        self.cursor = Some(cursor);
        self.restored = true;
        self.storage.commit(vec![StoreOp::Put { key: RESTORED_KEY.into(), value: vec![1] }])?;
        self.save_docs(&ids, true)?;
        Ok(self.pending_changes())
    }
}

/// Standard base64 (with or without padding) to bytes; None if it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let digits = text.trim().trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in group.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decodes_with_and_without_padding_and_refuses_other_text() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("AAEC/w==").as_deref(), Some(&[0u8, 1, 2, 255][..]));
        assert_eq!(decode_base64("").as_deref(), Some(&[][..]));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("ab!c"), None);
    }
}
