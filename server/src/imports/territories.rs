//! 网格划分表: one row per grid, with its district, sub-district and community,
//! under the server's city. Parents are created as needed, a known path with
//! a new name is renamed, and nothing is ever deleted.

use super::*;
use crate::store::Territory;
use gridsync_shared::imports::{HeaderMap, is_blank, match_headers, territory_row};
use std::collections::BTreeMap;

pub(super) fn run(
    store: &dyn Store,
    who: &Importer,
    path: &Path,
    mode: Mode,
    _now: i64,
    progress: &mut ProgressFn<'_>,
) -> Result<Outcome, ImportError> {
    let existing: HashMap<TerritoryPath, String> = store.territories()?.into_iter().map(|t| (t.path, t.name)).collect();
    let cities: Vec<&TerritoryPath> = existing.keys().filter(|p| p.level() == Level::City).collect();
    let root = match cities.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(ImportError::Refused(
                "还没有城市（根区域）：先用 territory add 创建城市，例如 xg 孝感市".into(),
            ));
        }
        _ => return Err(ImportError::Refused("服务器上有多个城市，无法确定导入到哪个城市".into())),
    };
    let mut report = Report::default();
    let mut header: Option<HeaderMap> = None;
    // Each node the file names: its name and the first row naming it.
    let mut nodes: BTreeMap<TerritoryPath, (String, u64)> = BTreeMap::new();
    super::read::read_rows(path, &mut |number, row| {
        let Some(map) = &header else {
            match match_headers(ImportKind::Territories, &row) {
                Ok(m) => {
                    report.unknown_columns = m.unknown.clone();
                    header = Some(m);
                }
                Err(ps) => {
                    report.problems(ps);
                    return Err(ImportError::Refused(String::new()));
                }
            }
            return Ok(());
        };
        if is_blank(&row) {
            return Ok(());
        }
        report.counts.rows += 1;
        let t = match territory_row(map, number, &row) {
            Ok(t) => t,
            Err(ps) => {
                report.problems(ps);
                return Ok(());
            }
        };
        let mut path = root.clone();
        let mut row_problems = Vec::new();
        let mut planned = Vec::new();
        for (i, (code, name)) in t.levels.iter().enumerate() {
            let column = ImportKind::Territories.columns()[i * 2 + 1].header;
            path = match path.child(code) {
                Ok(p) => p,
                Err(_) => {
                    row_problems.push(RowProblem::new(number, column, "编码不合法"));
                    break;
                }
            };
            if i == 3 && !who.in_scope(&path) {
                row_problems.push(RowProblem::new(number, "网格编码", "不在您管辖的区域内"));
            }
            match nodes.get(&path) {
                Some((other, first)) if other != name => {
                    row_problems.push(RowProblem::new(number, column, format!("与第{first}行同一编码的名称不同")))
                }
                _ => planned.push((path.clone(), name.clone())),
            }
        }
        if row_problems.is_empty() {
            for (p, n) in planned {
                nodes.entry(p).or_insert((n, number));
            }
        } else {
            report.problems(row_problems);
        }
        Ok(())
    })
    .or_else(|e| match e {
        ImportError::Refused(m) if m.is_empty() => Ok(()),
        e => Err(e),
    })?;
    if header.is_none() && report.problems_total == 0 {
        report.problem(RowProblem::new(1, "", "文件是空的：第一行应为表头"));
    }
    let mut writes = Vec::new();
    for (path, (name, _)) in &nodes {
        match existing.get(path) {
            None => {
                report.counts.create += 1;
                writes.push(Territory { path: path.clone(), name: name.clone() });
            }
            // A node above the importer's scope is only named, never renamed.
            Some(old) if old != name && who.in_scope(path) => {
                report.counts.update += 1;
                writes.push(Territory { path: path.clone(), name: name.clone() });
            }
            Some(_) => report.counts.unchanged += 1,
        }
    }
    report.finish();
    let mut outcome = Outcome { report, ..Outcome::default() };
    if !mode.writes() || !may_write(&outcome.report, mode) {
        return Ok(outcome);
    }
    let total = writes.len() as u64;
    // Parents first: paths sort before their children.
    for (i, t) in writes.iter().enumerate() {
        store.put_territory(t)?;
        progress(i as u64 + 1, total);
    }
    store.flush()?;
    outcome.written = Counts { rows: outcome.report.counts.rows, ..outcome.report.counts.clone() };
    Ok(outcome)
}
