//! JSON lines: one `{"id": ..., "record": ...}` object per line and record,
//! the record exactly as [`gridsync_shared::Record`]'s serde writes it.

use super::{ExportError, SnapshotItem};
use gridsync_shared::{DocId, Record};
use serde::Serialize;
use std::io::{BufWriter, Write};

/// One line of a JSONL file.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a DocId,
    record: &'a Record,
}

/// Writes one line per item to `out`.
pub(super) fn write_kind(
    out: &mut dyn Write,
    items: impl Iterator<Item = Result<SnapshotItem, ExportError>>,
) -> Result<(), ExportError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    for item in items {
        let item = item?;
        serde_json::to_writer(&mut out, &Line { id: &item.id, record: &item.record })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
