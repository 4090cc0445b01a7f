//! The downloadable templates: the first sheet holds the Chinese header row to
//! fill in, a second sheet (填写说明) says what each column means; the CSV
//! template is the header row in UTF-8 with a BOM (so Excel opens it right).

use super::ImportError;
use gridsync_shared::imports::ImportKind;
use rust_xlsxwriter::{Format, Workbook};

/// The template of `kind` as an XLSX workbook.
pub fn xlsx(kind: ImportKind) -> Result<Vec<u8>, ImportError> {
    let err = |e: rust_xlsxwriter::XlsxError| ImportError::Internal(e.to_string());
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    let sheet = book.add_worksheet();
    sheet.set_name(kind.name_zh()).map_err(err)?;
    for (c, col) in kind.columns().iter().enumerate() {
        let c = c as u16;
        sheet.write_string_with_format(0, c, col.header, &bold).map_err(err)?;
        // Text cells: ID numbers and phones typed in keep every digit.
        sheet.set_column_format(c, &text).map_err(err)?;
        sheet.set_column_width(c, 18).map_err(err)?;
    }
    let notes = book.add_worksheet();
    notes.set_name("填写说明").map_err(err)?;
    for (c, h) in ["列名", "是否必填", "说明", "示例"].iter().enumerate() {
        notes.write_string_with_format(0, c as u16, *h, &bold).map_err(err)?;
    }
    for (r, col) in kind.columns().iter().enumerate() {
        let r = r as u32 + 1;
        notes.write_string(r, 0, col.header).map_err(err)?;
        notes.write_string(r, 1, if col.required { "必填" } else { "选填" }).map_err(err)?;
        notes.write_string(r, 2, col.meaning).map_err(err)?;
        notes.write_string(r, 3, col.example).map_err(err)?;
    }
    notes.set_column_width(2, 60).map_err(err)?;
    book.save_to_buffer().map_err(err)
}

/// The template of `kind` as CSV (UTF-8 with BOM): the header row.
pub fn csv(kind: ImportKind) -> Vec<u8> {
    let mut out = vec![0xEF, 0xBB, 0xBF];
    let header: Vec<&str> = kind.columns().iter().map(|c| c.header).collect();
    out.extend_from_slice(header.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// The template's file name, e.g. `人口信息表.xlsx`.
pub fn file_name(kind: ImportKind, ext: &str) -> String {
    format!("{}.{ext}", kind.name_zh())
}
