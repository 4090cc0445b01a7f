//! CSV files that open cleanly in Excel and WPS.
//!
//! Each file is UTF-8 with a byte-order mark (so Excel does not guess GBK),
//! CRLF line ends, Chinese headers ([`super::table::headers`]), and standard
//! quoting of commas, quotes and line breaks (the `csv` crate).
//!
//! # Cells Excel would misread
//!
//! Excel turns `420902194803150021` into `4.20902E+17`, drops the leading zero
//! of `0712…`, makes `3-4` a date and runs `=…`, `+…`, `-…` and `@…` as
//! formulas (a CSV-injection risk with text typed on phones). So, by
//! [`encode_cell`]:
//!
//! 1. ID and phone numbers always, and any other text that Excel would read as a
//!    number, date, boolean or formula, are written as a text formula
//!    `="…"` (inner quotes doubled). Excel and WPS show exactly the text. This
//!    needs the text to fit a formula string: at most 255 characters and no line
//!    break.
//! 2. Text that would start a formula but does not fit (a long note beginning
//!    with `-`, say) is prefixed with a single quote `'`, as OWASP recommends.
//! 3. Everything else is written as it is.
//!
//! [`decode_cell`] inverts this exactly, for programs that read the files back.

use super::names::Names;
use super::table::{self, Cell};
use super::{ExportError, LocalTime, SnapshotItem};
use gridsync_shared::RecordKind;
use std::borrow::Cow;
use std::io::Write;

/// The UTF-8 byte-order mark every CSV file starts with.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Longest text Excel accepts as a string inside a formula.
const FORMULA_TEXT_LIMIT: usize = 255;

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

/// Whether Excel would run `s` as a formula.
fn starts_formula(s: &str) -> bool {
    matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'))
}

/// Whether Excel would read `s` as a number, date, time, percentage or boolean
/// instead of text (deliberately broad: guarding text that Excel would have
/// kept anyway costs nothing).
fn reads_as_value(s: &str) -> bool {
    let t = s.trim();
    let numeric =
        t.chars().any(is_digit) && t.chars().all(|c| is_digit(c) || " +-.,/:%eE()$¥￥年月日时分秒".contains(c));
    numeric || t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
}

fn needs_guard(s: &str) -> bool {
    starts_formula(s) || reads_as_value(s)
}

fn fits_formula(s: &str) -> bool {
    !s.contains(['\r', '\n']) && s.chars().count() + s.matches('"').count() <= FORMULA_TEXT_LIMIT
}

/// Writes `text` so Excel and WPS show it as text, exactly; `always_text`
/// guards it even when it would not be misread (ID and phone numbers). See the
/// module documentation for the rules; [`decode_cell`] is the inverse.
pub fn encode_cell(text: &str, always_text: bool) -> Cow<'_, str> {
    if text.is_empty() {
        return Cow::Borrowed(text);
    }
    if (always_text || needs_guard(text)) && fits_formula(text) {
        return Cow::Owned(format!("=\"{}\"", text.replace('"', "\"\"")));
    }
    // Too long or multi-line for a formula (or quote-prefixed already: one more
    // quote keeps the encoding reversible).
    if needs_guard(text.trim_start_matches('\'')) {
        return Cow::Owned(format!("'{text}"));
    }
    Cow::Borrowed(text)
}

/// The text a cell written by [`encode_cell`] stands for (after the CSV
/// parser has removed the CSV quoting).
pub fn decode_cell(cell: &str) -> Cow<'_, str> {
    if let Some(inner) = cell.strip_prefix("=\"").and_then(|c| c.strip_suffix('"')) {
        return Cow::Owned(inner.replace("\"\"", "\""));
    }
    if let Some(rest) = cell.strip_prefix('\'')
        && needs_guard(rest.trim_start_matches('\''))
    {
        return Cow::Borrowed(rest);
    }
    Cow::Borrowed(cell)
}

/// How a cell reads in the CSV.
fn render<'a>(cell: &'a Cell<'a>) -> Cow<'a, str> {
    match cell {
        Cell::Empty => Cow::Borrowed(""),
        Cell::Text(t) => encode_cell(t, false),
        Cell::Protected(t) => encode_cell(t, true),
        Cell::Time(ms) => Cow::Owned(LocalTime::from_unix_ms(*ms).text()),
        Cell::Count(n) => Cow::Owned(n.to_string()),
        Cell::Number(x) => Cow::Owned(x.to_string()),
    }
}

/// Writes `kind`'s CSV file from `items` to `out`: BOM, header row, one row
/// per record, with `names` beside the ids.
pub fn write_kind(
    out: &mut dyn Write,
    kind: RecordKind,
    as_of_ms: i64,
    names: &Names,
    items: impl Iterator<Item = Result<SnapshotItem, ExportError>>,
) -> Result<(), ExportError> {
    out.write_all(BOM)?;
    let mut csv = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .quote_style(::csv::QuoteStyle::Necessary)
        .buffer_capacity(64 * 1024)
        .from_writer(out);
    csv.write_record(table::headers(kind))?;
    for item in items {
        let item = item?;
        let cells = table::row(&item, as_of_ms, names);
        csv.write_record(cells.iter().map(|c| render(c).into_owned()))?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_dates_and_formulas_are_written_as_text_formulas() {
        assert_eq!(encode_cell("420902194803150021", true), "=\"420902194803150021\"");
        assert_eq!(encode_cell("0712", false), "=\"0712\"");
        assert_eq!(encode_cell("3-4", false), "=\"3-4\"");
        assert_eq!(encode_cell("2024年5月1日", false), "=\"2024年5月1日\"");
        assert_eq!(encode_cell("=HYPERLINK(\"x\")", false), "=\"=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(encode_cell("TRUE", false), "=\"TRUE\"");
        assert_eq!(encode_cell("东湖路12号", false), "东湖路12号");
        assert_eq!(encode_cell("", true), "");
    }

    #[test]
    fn long_or_multiline_formula_text_gets_a_quote_prefix() {
        let long = format!("-{}", "已处理".repeat(100));
        assert_eq!(encode_cell(&long, false), format!("'{long}"));
        assert_eq!(encode_cell("-第一行\n第二行", false), "'-第一行\n第二行");
        let digits = "1".repeat(300);
        assert_eq!(encode_cell(&digits, false), format!("'{digits}"));
    }

    #[test]
    fn decoding_inverts_encoding_for_tricky_values() {
        let values = [
            "420902194803150021",
            "0712-2345678",
            "=1+1",
            "'=1+1",
            "''@x",
            "'普通文字",
            "=\"already\"",
            "\"引号\"",
            "“中文引号”，逗号,还有\r\n换行",
            "+86 138",
            "-第一行\n第二行",
            "1,234.5",
            "true",
            "正常文本",
            "",
        ];
        let long = format!("-{}", "很长".repeat(200));
        let long_quoted = format!("'{long}");
        let long_digits = "9".repeat(300);
        for v in values.iter().copied().chain([long.as_str(), long_quoted.as_str(), long_digits.as_str()]) {
            for always in [false, true] {
                let encoded = encode_cell(v, always);
                assert_eq!(decode_cell(&encoded), v, "{v:?} encoded as {encoded:?}");
            }
        }
    }
}
