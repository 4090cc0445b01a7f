//! Reading an imported file row by row: CSV in UTF-8 (with or without BOM) or
//! GBK, told apart by whether the whole file is valid UTF-8; XLSX (the first
//! sheet, cell by cell with calamine's streaming reader). Every row is handed
//! on as text cells with its spreadsheet row number (the header is row 1).

use super::ImportError;
use calamine::{DataRef, Reader, Xlsx};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A callback given each row: its number and its cells.
pub type RowSink<'a> = dyn FnMut(u64, Vec<String>) -> Result<(), ImportError> + 'a;

/// Reads `path` (XLSX if it starts as a zip archive, else CSV) and calls `row` for each row.
pub fn read_rows(path: &Path, row: &mut RowSink<'_>) -> Result<(), ImportError> {
    let mut file = std::fs::File::open(path).map_err(|e| ImportError::File(format!("无法打开文件：{e}")))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| ImportError::File(e.to_string()))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| ImportError::File(e.to_string()))?;
    if n == 4 && magic == *b"PK\x03\x04" {
        read_xlsx(BufReader::new(file), row)
    } else {
        let utf8 = is_utf8(std::fs::File::open(path).map_err(|e| ImportError::File(e.to_string()))?)?;
        let reader: Box<dyn Read> = if utf8 {
            Box::new(SkipBom { inner: BufReader::new(file), start: true })
        } else {
            Box::new(Gbk::new(BufReader::new(file)))
        };
        read_csv(reader, row)
    }
}

/// Whether everything `r` yields is valid UTF-8 (read in chunks; memory stays flat).
fn is_utf8(mut r: impl Read) -> Result<bool, ImportError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut carry = 0usize;
    loop {
        let n = r.read(&mut buf[carry..]).map_err(|e| ImportError::File(e.to_string()))?;
        let end = carry + n;
        if n == 0 {
            return Ok(carry == 0);
        }
        match std::str::from_utf8(&buf[..end]) {
            Ok(_) => carry = 0,
            // A character cut at the chunk's end: keep its bytes for the next read.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..end, 0);
                carry = end - valid;
            }
            Err(_) => return Ok(false),
        }
    }
}

/// Drops a UTF-8 byte order mark at the start.
struct SkipBom<R> {
    inner: R,
    start: bool,
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.start {
            self.start = false;
            let mut head = [0u8; 3];
            let mut got = 0;
            while got < 3 {
                let n = self.inner.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got == 3 && head == [0xEF, 0xBB, 0xBF] {
                return self.read(out);
            }
            let n = got.min(out.len());
            out[..n].copy_from_slice(&head[..n]);
            // `out` is never shorter than 3 from the CSV reader; be safe anyway.
            if n < got {
                return Err(std::io::Error::other("read buffer too small"));
            }
            return Ok(n);
        }
        self.inner.read(out)
    }
}

/// Decodes GBK (as Chinese Excel and WPS write it) to UTF-8 while reading.
struct Gbk<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    at: usize,
    len: usize,
    eof: bool,
    /// The decoder was told the input ended: it may not be used again.
    finished: bool,
}

impl<R: Read> Gbk<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: encoding_rs::GBK.new_decoder_without_bom_handling(),
            input: vec![0u8; 64 * 1024],
            at: 0,
            len: 0,
            eof: false,
            finished: false,
        }
    }
}

impl<R: Read> Read for Gbk<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.finished {
                return Ok(0);
            }
            if self.at == self.len && !self.eof {
                self.len = self.inner.read(&mut self.input)?;
                self.at = 0;
                self.eof = self.len == 0;
            }
            let (result, read, written, _) = self.decoder.decode_to_utf8(&self.input[self.at..self.len], out, self.eof);
            self.at += read;
            if self.eof && result == encoding_rs::CoderResult::InputEmpty {
                self.finished = true;
            }
            if written > 0 || self.finished {
                return Ok(written);
            }
        }
    }
}

fn read_csv(reader: impl Read, row: &mut RowSink<'_>) -> Result<(), ImportError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    let mut record = csv::StringRecord::new();
    let mut number = 0u64;
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                number += 1;
                row(number, record.iter().map(str::to_string).collect())?;
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(number + 1);
                return Err(ImportError::File(format!("CSV 第{line}行无法读取（{}）", csv_reason(&e))));
            }
        }
    }
}

fn csv_reason(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "编码不是 UTF-8 或 GBK",
        csv::ErrorKind::Io(_) => "读取失败",
        _ => "格式错误",
    }
}

/// A cell as text: whole numbers without a decimal point (an ID number typed
/// as a number in Excel reads back as it was typed, when Excel kept it whole).
fn cell_text(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => d.as_f64().to_string(),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

fn read_xlsx<R: Read + Seek>(reader: R, row: &mut RowSink<'_>) -> Result<(), ImportError> {
    let bad = |e: calamine::XlsxError| ImportError::File(format!("不是有效的 XLSX 文件（{e}）"));
    let mut book: Xlsx<R> = Xlsx::new(reader).map_err(bad)?;
    let first = book.sheet_names().first().cloned().ok_or_else(|| ImportError::File("XLSX 文件没有工作表".into()))?;
    let mut cells = book.worksheet_cells_reader(&first).map_err(bad)?;
    let mut current: Option<u32> = None;
    let mut cells_of_row: Vec<String> = Vec::new();
    // Rows are numbered as the sheet numbers them: 1 is the header.
    while let Some(cell) = cells.next_cell().map_err(bad)? {
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(prev) = current {
                row(u64::from(prev) + 1, std::mem::take(&mut cells_of_row))?;
            }
            current = Some(r);
        }
        let c = c as usize;
        if c > 1024 {
            continue;
        }
        if cells_of_row.len() <= c {
            cells_of_row.resize(c + 1, String::new());
        }
        cells_of_row[c] = cell_text(cell.get_value());
    }
    if let Some(prev) = current {
        row(u64::from(prev) + 1, cells_of_row)?;
    }
    Ok(())
}
