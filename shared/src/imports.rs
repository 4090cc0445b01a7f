//! Bulk imports from a city's spreadsheets: the three templates' columns, how a
//! file's header row is matched to them, and every check a row must pass, with
//! the reason in Chinese. Pure: the server's engine reads files and writes records.
//!
//! Decisions: 15-digit ID numbers (issued before 1999) are refused with a reason
//! asking for the 18-digit number, since the check digit cannot be verified;
//! reasons never quote the value checked (an ID number or phone would otherwise
//! reach reports and logs), only the row and column.

use crate::Role;
use serde::{Deserialize, Serialize};

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// 网格划分表: one row per grid with its district, sub-district and community.
    Territories,
    /// 网格员名册: one row per person who signs in.
    People,
    /// 人口信息表: one row per resident, grouped into households.
    Households,
}

impl ImportKind {
    /// Every kind, in the order a city imports them.
    pub const ALL: [ImportKind; 3] = [ImportKind::Territories, ImportKind::People, ImportKind::Households];

    /// Stable text form (`territories`, `people`, `households`), as in URLs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Territories => "territories",
            ImportKind::People => "people",
            ImportKind::Households => "households",
        }
    }

    /// The kind from its text form.
    pub fn parse(s: &str) -> Option<ImportKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The template's name in Chinese (also its file name).
    pub fn name_zh(self) -> &'static str {
        match self {
            ImportKind::Territories => "网格划分表",
            ImportKind::People => "网格员名册",
            ImportKind::Households => "人口信息表",
        }
    }

    /// The template's columns, in template order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            ImportKind::Territories => TERRITORY_COLUMNS,
            ImportKind::People => PEOPLE_COLUMNS,
            ImportKind::Households => HOUSEHOLD_COLUMNS,
        }
    }
}

/// One column of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header as the file must spell it (trimmed).
    pub header: &'static str,
    /// Whether every row must fill it.
    pub required: bool,
    /// What it means, for the template's note row and the README.
    pub meaning: &'static str,
    /// An example value for the template's example row.
    pub example: &'static str,
}

const fn col(header: &'static str, required: bool, meaning: &'static str, example: &'static str) -> Column {
    Column { header, required, meaning, example }
}

/// 网格划分表: every level's code (a-z 0-9 -, 1–32) and name, under the server's city.
pub const TERRITORY_COLUMNS: &[Column] = &[
    col("区县编码", true, "区县编码，小写字母、数字或-", "xn"),
    col("区县名称", true, "区县名称", "孝南区"),
    col("街道编码", true, "街道（乡镇）编码", "sh"),
    col("街道名称", true, "街道（乡镇）名称", "书院街道"),
    col("社区编码", true, "社区（村）编码", "dh"),
    col("社区名称", true, "社区（村）名称", "东湖社区"),
    col("网格编码", true, "网格编码", "g01"),
    col("网格名称", true, "网格名称", "第一网格"),
];

/// 网格员名册.
pub const PEOPLE_COLUMNS: &[Column] = &[
    col("姓名", true, "姓名", "张伟"),
    col("登录名", true, "登录名，1-64个字符，不含空格", "zhangwei"),
    col("角色", true, "网格员、网格长、督导或管理员", "网格员"),
    col(
        "所属区域",
        true,
        "区域路径（如 xg/xn/sh/dh/g01）或名称（孝南区/书院街道/东湖社区/第一网格）",
        "xg/xn/sh/dh/g01",
    ),
    col("手机号", false, "11位手机号（只作核对，不保存）", "13800138000"),
];

/// 人口信息表: one row per resident.
pub const HOUSEHOLD_COLUMNS: &[Column] = &[
    col("户号", false, "户号；不填时以户主身份证号识别一户", "XN-000001"),
    col(
        "所属网格",
        true,
        "网格路径（如 xg/xn/sh/dh/g01）或名称（孝南区/书院街道/东湖社区/第一网格）",
        "xg/xn/sh/dh/g01",
    ),
    col("地址", false, "住址（户主一行必填）", "东湖路12号3栋201"),
    col("姓名", true, "居民姓名", "李秀英"),
    col("与户主关系", true, "户主、配偶、子女、父母等；“户主”一行即一户", "户主"),
    col("身份证号", false, "18位公民身份号码（无户号时户主必填）", "420902195003120028"),
    col("联系电话", false, "手机号或固定电话（区号-号码）", "13800138000"),
    col("标签", false, "多个标签用、或逗号分隔", "独居老人、低保"),
    col("备注", false, "备注（户主一行的备注记在户上）", ""),
    col("户主身份证号", false, "成员行所属户的户主身份证号（无户号时用）", ""),
];

/// A problem with one cell (or a whole row) of an imported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    /// The row as the spreadsheet numbers it (the header row is 1).
    pub row: u64,
    /// The column's header, or empty for the whole row.
    pub column: String,
    /// Why, in Chinese; never quotes an ID number or phone.
    pub reason_zh: String,
}

impl RowProblem {
    /// A problem at `row`, `column`.
    pub fn new(row: u64, column: &str, reason_zh: impl Into<String>) -> Self {
        Self { row, column: column.to_string(), reason_zh: reason_zh.into() }
    }
}

/// Where each template column is in a file, from its header row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMap {
    kind: ImportKind,
    /// For each template column, its index in the file's rows.
    at: Vec<Option<usize>>,
    /// Headers the template does not know (ignored; shown as a warning).
    pub unknown: Vec<String>,
}

/// Matches a file's header row to `kind`'s template: exact headers, trimmed, in
/// any order. A required column missing, or a header twice, is a problem of row 1.
pub fn match_headers(kind: ImportKind, headers: &[String]) -> Result<HeaderMap, Vec<RowProblem>> {
    let cols = kind.columns();
    let mut at = vec![None; cols.len()];
    let mut unknown = Vec::new();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim().trim_start_matches('\u{feff}').trim();
        if h.is_empty() {
            continue;
        }
        match cols.iter().position(|c| c.header == h) {
            Some(c) if at[c].is_some() => problems.push(RowProblem::new(1, h, "表头重复")),
            Some(c) => at[c] = Some(i),
            None => unknown.push(h.to_string()),
        }
    }
    for (c, col) in cols.iter().enumerate() {
        if col.required && at[c].is_none() {
            problems.push(RowProblem::new(
                1,
                col.header,
                format!("缺少必填列“{}”（这是{}模板吗？）", col.header, kind.name_zh()),
            ));
        }
    }
    if problems.is_empty() { Ok(HeaderMap { kind, at, unknown }) } else { Err(problems) }
}

impl HeaderMap {
    /// The trimmed cell of template column `header` in `row` ("" if the file lacks the column).
    pub fn cell<'r>(&self, row: &'r [String], header: &str) -> &'r str {
        let c = self.kind.columns().iter().position(|c| c.header == header);
        match c.and_then(|c| self.at[c]).and_then(|i| row.get(i)) {
            Some(v) => v.trim(),
            None => "",
        }
    }

    /// Whether the file has the column `header`.
    pub fn has(&self, header: &str) -> bool {
        self.kind.columns().iter().position(|c| c.header == header).and_then(|c| self.at[c]).is_some()
    }
}

/// Whether a row is blank (every cell empty): skipped, not a problem.
pub fn is_blank(row: &[String]) -> bool {
    row.iter().all(|c| c.trim().is_empty())
}

/// GB 11643 weights of the first 17 digits.
pub const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters by (weighted sum mod 11).
pub const ID_CHECKS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character of an ID number's first 17 digits (None unless 17 ASCII digits).
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.bytes().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(ID_CHECKS[(sum % 11) as usize])
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// Checks a citizen ID number (GB 11643, 18 characters: 17 digits and a check
/// digit or X; birth date 1900–2099 and a real day); returns it normalised
/// (upper-case X, no spaces), or the reason in Chinese.
pub fn check_id_number(s: &str) -> Result<String, String> {
    let v: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let n = v.chars().count();
    if n == 15 && v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("15位旧身份证号无法校验，请填写18位身份证号".into());
    }
    if n != 18 {
        return Err(format!("身份证号应为18位，此处为{n}位"));
    }
    let (first, last) = v.split_at(17);
    if !first.bytes().all(|b| b.is_ascii_digit()) || !last.bytes().all(|b| b.is_ascii_digit() || b == b'X') {
        return Err("身份证号只能由数字和末位X组成".into());
    }
    let num = |a: usize, b: usize| first[a..b].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (num(6, 10), num(10, 12), num(12, 14));
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 0,
    };
    if !(1900..=2099).contains(&y) || d == 0 || d > days {
        return Err("身份证号中的出生日期不正确".into());
    }
    match id_check_char(first) {
        Some(c) if last.starts_with(c) => Ok(v),
        _ => Err("身份证号校验位不正确（可能填错了某一位）".into()),
    }
}

/// Checks a phone number: a mobile (11 digits, 1[3-9]…) or a landline
/// (区号-号码: 0 and 2–3 digits, a dash, 7–8 digits); returns it without spaces.
pub fn check_phone(s: &str) -> Result<String, String> {
    let v: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let b = v.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit);
    let landline = match v.split_once('-') {
        Some((area, number)) => {
            (3..=4).contains(&area.len())
                && area.starts_with('0')
                && area.bytes().all(|c| c.is_ascii_digit())
                && (7..=8).contains(&number.len())
                && number.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    };
    if mobile || landline {
        Ok(v)
    } else {
        Err("电话号码格式不正确：手机号为1开头的11位数字，固定电话为“区号-号码”".into())
    }
}

/// Checks a territory code: 1–32 characters of a-z, 0-9 and '-'.
pub fn check_code(s: &str) -> Result<String, String> {
    let v = s.trim();
    if !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        Ok(v.to_string())
    } else {
        Err("编码应为1-32个小写字母、数字或-".into())
    }
}

/// The role a roster names: 网格员 → field staff; 网格长, 督导 or 负责人 →
/// supervisor; 管理员 → administrator (the English forms too).
pub fn parse_role(s: &str) -> Result<Role, String> {
    match s.trim() {
        "网格员" | "field_staff" => Ok(Role::FieldStaff),
        "网格长" | "督导" | "负责人" | "supervisor" => Ok(Role::Supervisor),
        "管理员" | "administrator" => Ok(Role::Administrator),
        _ => Err("角色应为网格员、网格长、督导或管理员".into()),
    }
}

/// Splits a tags cell on 、 , ， ; ； into trimmed, distinct tags (in order).
pub fn split_tags(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split(['、', ',', '，', ';', '；']) {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Longest name (of a person, territory or resident) an import accepts, in characters.
pub const MAX_NAME_CHARS: usize = crate::directory::MAX_NAME_CHARS;
/// Longest address or note an import accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Collects the problems of one row while reading its cells.
struct RowCheck<'a> {
    map: &'a HeaderMap,
    row: &'a [String],
    number: u64,
    problems: Vec<RowProblem>,
}

impl<'a> RowCheck<'a> {
    fn cell(&self, header: &str) -> &'a str {
        self.map.cell(self.row, header)
    }

    fn problem(&mut self, header: &str, reason: impl Into<String>) {
        self.problems.push(RowProblem::new(self.number, header, reason));
    }

    /// A required cell, within `max` characters.
    fn required(&mut self, header: &str, max: usize) -> String {
        let v = self.cell(header);
        if v.is_empty() {
            self.problem(header, "必填项为空");
        } else if v.chars().count() > max {
            self.problem(header, format!("超过{max}个字符"));
        }
        v.to_string()
    }

    fn optional(&mut self, header: &str, max: usize) -> String {
        let v = self.cell(header);
        if v.chars().count() > max {
            self.problem(header, format!("超过{max}个字符"));
        }
        v.to_string()
    }

    fn code(&mut self, header: &str) -> String {
        let v = self.cell(header);
        if v.is_empty() {
            self.problem(header, "必填项为空");
            return String::new();
        }
        match check_code(v) {
            Ok(v) => v,
            Err(e) => {
                self.problem(header, e);
                String::new()
            }
        }
    }

    fn id_number(&mut self, header: &str) -> Option<String> {
        let v = self.cell(header);
        if v.is_empty() {
            return None;
        }
        match check_id_number(v) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(header, e);
                None
            }
        }
    }

    fn phone(&mut self, header: &str) -> String {
        let v = self.cell(header);
        if v.is_empty() {
            return String::new();
        }
        check_phone(v).unwrap_or_else(|e| {
            self.problem(header, e);
            String::new()
        })
    }

    fn done<T>(self, value: T) -> Result<T, Vec<RowProblem>> {
        if self.problems.is_empty() { Ok(value) } else { Err(self.problems) }
    }
}

/// One row of 网格划分表: (code, name) of district, sub-district, community and grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerritoryRow {
    /// 区县, 街道, 社区, 网格: each (code, name), from the top.
    pub levels: [(String, String); 4],
}

/// Checks one row of 网格划分表 (row `number` as the spreadsheet counts).
pub fn territory_row(map: &HeaderMap, number: u64, row: &[String]) -> Result<TerritoryRow, Vec<RowProblem>> {
    let mut c = RowCheck { map, row, number, problems: Vec::new() };
    let mut level = |code: &str, name: &str| (c.code(code), c.required(name, MAX_NAME_CHARS));
    let levels = [
        level("区县编码", "区县名称"),
        level("街道编码", "街道名称"),
        level("社区编码", "社区名称"),
        level("网格编码", "网格名称"),
    ];
    c.done(TerritoryRow { levels })
}

/// One row of 网格员名册.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonRow {
    /// 姓名.
    pub name: String,
    /// 登录名.
    pub username: String,
    /// 角色.
    pub role: Role,
    /// 所属区域 as written (a path or names joined by /); the server resolves it.
    pub territory: String,
}

/// Checks one row of 网格员名册.
pub fn person_row(map: &HeaderMap, number: u64, row: &[String]) -> Result<PersonRow, Vec<RowProblem>> {
    let mut c = RowCheck { map, row, number, problems: Vec::new() };
    let name = c.required("姓名", MAX_NAME_CHARS);
    let username = c.required("登录名", 64);
    if username.chars().any(char::is_whitespace) {
        c.problem("登录名", "登录名不能含空格");
    }
    let role = match parse_role(c.cell("角色")) {
        Ok(r) => Some(r),
        Err(e) => {
            c.problem("角色", if c.cell("角色").is_empty() { "必填项为空".to_string() } else { e });
            None
        }
    };
    let territory = c.required("所属区域", 400);
    c.phone("手机号");
    let role = role.unwrap_or(Role::FieldStaff);
    c.done(PersonRow { name, username, role, territory })
}

/// The relation that marks a household's head.
pub const HEAD_RELATION: &str = "户主";

/// One row of 人口信息表: one resident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidentRow {
    /// 户号, if given.
    pub household_no: Option<String>,
    /// 所属网格 as written; the server resolves it.
    pub grid: String,
    /// 地址.
    pub address: String,
    /// 姓名.
    pub name: String,
    /// 与户主关系.
    pub relation: String,
    /// 身份证号, normalised, if given.
    pub id_number: Option<String>,
    /// 联系电话, if given.
    pub phone: String,
    /// 标签.
    pub tags: Vec<String>,
    /// 备注.
    pub notes: String,
    /// 户主身份证号 (of a member row), if given.
    pub head_id_number: Option<String>,
}

impl ResidentRow {
    /// Whether this row is its household's head.
    pub fn is_head(&self) -> bool {
        self.relation == HEAD_RELATION
    }

    /// The household's stable key this row names, if it names one: `no:<户号>`,
    /// or `id:<户主身份证号>` (its own for a head row).
    pub fn household_key(&self) -> Option<String> {
        if let Some(no) = &self.household_no {
            return Some(format!("no:{no}"));
        }
        let id = if self.is_head() { self.id_number.as_ref() } else { self.head_id_number.as_ref() };
        id.map(|id| format!("id:{id}"))
    }
}

/// Checks one row of 人口信息表 on its own (links between rows — a member
/// whose household has no head, a duplicate ID number — are the engine's).
pub fn resident_row(map: &HeaderMap, number: u64, row: &[String]) -> Result<ResidentRow, Vec<RowProblem>> {
    let mut c = RowCheck { map, row, number, problems: Vec::new() };
    let household_no = c.optional("户号", 64);
    let grid = c.required("所属网格", 400);
    let name = c.required("姓名", MAX_NAME_CHARS);
    let relation = c.required("与户主关系", 20);
    let address = c.optional("地址", MAX_TEXT_CHARS);
    let id_number = c.id_number("身份证号");
    let phone = c.phone("联系电话");
    let tags = split_tags(c.cell("标签"));
    if tags.iter().any(|t| t.chars().count() > 20) {
        c.problem("标签", "每个标签不超过20个字符");
    }
    let notes = c.optional("备注", MAX_TEXT_CHARS);
    let head_id_number = c.id_number("户主身份证号");
    let head = relation == HEAD_RELATION;
    if head && address.is_empty() {
        c.problem("地址", "户主一行必须填写地址");
    }
    if head && household_no.is_empty() && id_number.is_none() && c.cell("身份证号").is_empty() {
        c.problem("身份证号", "没有户号时，户主必须填写身份证号（用来识别一户）");
    }
    c.done(ResidentRow {
        household_no: (!household_no.is_empty()).then_some(household_no),
        grid,
        address,
        name,
        relation,
        id_number,
        phone,
        tags,
        notes,
        head_id_number,
    })
}
