//! JSON lines: one `{"id": ..., "record": ...}` object per line and record,
//! the record exactly as [`gridsync_shared::Record`]'s serde writes it. Visit
//! logs and cases also name their photo files (`"photo_files":
//! ["photos/<sha256>.jpg", ...]`, as [`super::table::photo_files`] lists them).

use super::{ExportError, SnapshotItem};
use gridsync_shared::{DocId, Record};
use serde::Serialize;
use std::io::{BufWriter, Write};

/// One line of a JSONL file.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a DocId,
    record: &'a Record,
    /// Visit logs and cases only.
    #[serde(skip_serializing_if = "Option::is_none")]
    photo_files: Option<Vec<String>>,
}

/// Writes one line per item to `out`.
pub(super) fn write_kind(
    out: &mut dyn Write,
    items: impl Iterator<Item = Result<SnapshotItem, ExportError>>,
) -> Result<(), ExportError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    for item in items {
        let item = item?;
        let photo_files = matches!(item.record, Record::VisitLog(_) | Record::Case(_))
            .then(|| super::table::photo_files(item.record.photos()));
        serde_json::to_writer(&mut out, &Line { id: &item.id, record: &item.record, photo_files })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
