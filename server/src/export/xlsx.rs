//! The XLSX workbook: one worksheet per record type (住户, 走访记录, 事件,
//! 承诺事项, in that order, so `xl/worksheets/sheet1.xml` is the households),
//! with the same columns as the CSV files ([`super::table`]).
//!
//! Written with `rust_xlsxwriter` in constant-memory mode: each row goes to the
//! worksheet's temporary file as soon as the next one starts, and strings are
//! stored inline, so memory does not grow with the row count. ID and phone
//! numbers are string cells (never numbers), times are real date-time cells in
//! Beijing time, counts and coordinates are numbers. A record type with more
//! rows than a worksheet holds continues on `住户（2）` and so on; text longer
//! than a cell holds is cut and marked `…（已截断）`.
//!
//! The finished workbook streams from a helper thread through an OS pipe into
//! the snapshot's zip entry, so it is never held in memory and needs no second
//! temporary copy.

use super::names::Names;
use super::table::{self, Cell};
use super::{ExportError, LOCAL_OFFSET_MS, SnapshotItem};
use gridsync_shared::RecordKind;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet};
use std::io::Write;

/// The workbook's entry name in the snapshot archive.
pub const ENTRY_NAME: &str = "snapshot.xlsx";

/// Rows a worksheet holds, the header row included.
pub const MAX_ROWS: u32 = 1_048_576;

/// Characters a cell holds.
pub const MAX_CELL_CHARS: usize = 32_767;

/// What replaces the end of text too long for a cell.
pub const TRUNCATED_MARK: &str = "…（已截断）";

/// A snapshot's workbook being filled one record type at a time.
pub(super) struct SnapshotBook {
    workbook: Workbook,
    header: Format,
    time: Format,
}

fn column_width(header: &str) -> f64 {
    match header {
        "记录编号" | "创建人" | "走访住户" | "涉及住户" | "来源走访" => 38.0,
        "地址" | "家庭成员" | "备注" | "走访情况" | "群众诉求" | "发现问题" | "描述" | "最新跟进" | "承诺内容"
        | "最新结果说明" | "标题" | "照片" => 36.0,
        "户主电话" | "户主身份证号" | "网格" => 21.0,
        h if h.ends_with("时间") || h.ends_with("期限") => 20.0,
        _ => 12.0,
    }
}

fn fit(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_CELL_CHARS || text.chars().count() <= MAX_CELL_CHARS {
        return text.into();
    }
    let keep = MAX_CELL_CHARS - TRUNCATED_MARK.chars().count();
    text.chars().take(keep).chain(TRUNCATED_MARK.chars()).collect::<String>().into()
}

impl SnapshotBook {
    /// An empty workbook, created (as its properties say) at `generated_at_ms`
    /// rather than now, so the same snapshot gives the same bytes.
    pub(super) fn new(generated_at_ms: i64) -> Result<Self, ExportError> {
        let mut workbook = Workbook::new();
        let created = ExcelDateTime::from_timestamp(generated_at_ms.div_euclid(1_000))?;
        workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
        Ok(Self {
            workbook,
            header: Format::new().set_bold(),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
    }

    /// Adds a worksheet named `name` with `kind`'s header row.
    fn sheet(&mut self, kind: RecordKind, name: &str) -> Result<&mut Worksheet, ExportError> {
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        for (col, header) in (0u16..).zip(table::headers(kind)) {
            sheet.set_column_width(col, column_width(header))?;
            sheet.write_string_with_format(0, col, *header, &self.header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        Ok(sheet)
    }

    /// Writes `kind`'s worksheet (or worksheets, past [`MAX_ROWS`]) from `items`.
    pub(super) fn write_kind(
        &mut self,
        kind: RecordKind,
        as_of_ms: i64,
        names: &Names,
        items: impl Iterator<Item = Result<SnapshotItem, ExportError>>,
    ) -> Result<(), ExportError> {
        let mut part = 1;
        let time = self.time.clone();
        let mut sheet = self.sheet(kind, kind.name_zh())?;
        let mut row = 1u32;
        for item in items {
            let item = item?;
            if row == MAX_ROWS {
                part += 1;
                sheet = self.sheet(kind, &format!("{}（{part}）", kind.name_zh()))?;
                row = 1;
            }
            for (col, cell) in (0u16..).zip(table::row(&item, as_of_ms, names)) {
                write_cell(sheet, row, col, &cell, &time)?;
            }
            row += 1;
        }
        Ok(())
    }

    /// Writes the finished workbook to `out`.
    pub(super) fn save(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        let (mut reader, mut writer) = std::io::pipe()?;
        let workbook = &mut self.workbook;
        std::thread::scope(|scope| {
            let saver = scope.spawn(move || {
                let saved = workbook.save_to_writer(&mut writer);
                drop(writer); // end of file for the reader
                saved
            });
            let copied = std::io::copy(&mut reader, out);
            drop(reader); // a writer still writing now fails instead of waiting
            let saved = saver.join().map_err(|_| std::io::Error::other("the workbook writer thread panicked"))?;
            copied?;
            saved?;
            Ok(())
        })
    }
}

fn write_cell(sheet: &mut Worksheet, row: u32, col: u16, cell: &Cell<'_>, time: &Format) -> Result<(), ExportError> {
    match cell {
        Cell::Empty => {}
        Cell::Text(t) => {
            sheet.write_string(row, col, fit(t))?;
        }
        Cell::Protected(t) => {
            if !t.is_empty() {
                sheet.write_string(row, col, fit(t))?;
            }
        }
        Cell::Time(ms) => {
            let local = ms.saturating_add(LOCAL_OFFSET_MS).div_euclid(1_000);
            match ExcelDateTime::from_timestamp(local) {
                Ok(dt) => {
                    sheet.write_datetime_with_format(row, col, &dt, time)?;
                }
                // Outside Excel's years 1900-9999: show the text instead.
                Err(_) => {
                    sheet.write_string(row, col, super::LocalTime::from_unix_ms(*ms).text())?;
                }
            }
        }
        Cell::Count(n) => {
            sheet.write_number(row, col, *n as f64)?;
        }
        Cell::Number(x) => {
            sheet.write_number(row, col, *x)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_longer_than_a_cell_is_cut_and_marked() {
        let long = "长".repeat(MAX_CELL_CHARS + 10);
        let cut = fit(&long);
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS);
        assert!(cut.ends_with(TRUNCATED_MARK));
        assert_eq!(fit("短"), "短");
    }
}
