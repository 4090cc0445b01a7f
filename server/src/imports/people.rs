//! 网格员名册: one row per person. A known 登录名 is updated (name, role, and a
//! move of territory as `person move` does it); a new one is added with a
//! random initial password, listed only in the passwords file.

use super::*;
use crate::admin::{self, AdminCommand, PersonCommand, random_password};
use crate::auth::hash_password;
use gridsync_shared::imports::{HeaderMap, PersonRow, is_blank, match_headers, person_row};

/// Whether `role` may be responsible for `territory` (as `person add` checks it).
fn fits(role: Role, territory: &TerritoryPath) -> Result<(), &'static str> {
    match (role, territory.level()) {
        (Role::FieldStaff, Level::Grid) => Ok(()),
        (Role::FieldStaff, _) => Err("网格员的所属区域应为一个网格"),
        (Role::Supervisor, Level::Grid) => Err("网格长/督导的所属区域应为社区或以上"),
        _ => Ok(()),
    }
}

enum Plan {
    Create(PersonRow, TerritoryPath),
    Update(Person, PersonRow, TerritoryPath),
}

pub(super) fn run(
    store: &dyn Store,
    who: &Importer,
    path: &Path,
    mode: Mode,
    now: i64,
    progress: &mut ProgressFn<'_>,
) -> Result<Outcome, ImportError> {
    let territories = Territories::load(store)?;
    let mut report = Report::default();
    let mut header: Option<HeaderMap> = None;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut plans = Vec::new();
    super::read::read_rows(path, &mut |number, row| {
        let Some(map) = &header else {
            match match_headers(ImportKind::People, &row) {
                Ok(m) => {
                    report.unknown_columns = m.unknown.clone();
                    header = Some(m);
                    return Ok(());
                }
                Err(ps) => {
                    report.problems(ps);
                    return Err(ImportError::Refused(String::new()));
                }
            }
        };
        if is_blank(&row) {
            return Ok(());
        }
        report.counts.rows += 1;
        let p = match person_row(map, number, &row) {
            Ok(p) => p,
            Err(ps) => {
                report.problems(ps);
                return Ok(());
            }
        };
        if let Some(first) = seen.get(&p.username) {
            report.problem(RowProblem::new(number, "登录名", format!("登录名与第{first}行重复")));
            return Ok(());
        }
        seen.insert(p.username.clone(), number);
        let found = territories.resolve(&p.territory);
        if let Some(problem) = territory_problem(who, found.as_ref(), false, number, "所属区域") {
            report.problem(problem);
            return Ok(());
        }
        let Some(territory) = found else { return Ok(()) };
        if let Err(reason) = fits(p.role, &territory) {
            report.problem(RowProblem::new(number, "角色", reason));
            return Ok(());
        }
        match store.person_by_username(&p.username)? {
            None => {
                report.counts.create += 1;
                plans.push(Plan::Create(p, territory));
            }
            Some(old) => {
                if who.admin.as_ref().is_some_and(|a| a.id == old.id) {
                    report.problem(RowProblem::new(number, "登录名", "不能通过导入修改自己的账号"));
                } else if !who.in_scope(&old.territory) {
                    report.problem(RowProblem::new(number, "登录名", "此登录名已被您管辖区域外的人员使用"));
                } else if (old.name.as_str(), old.role, &old.territory) == (p.name.as_str(), p.role, &territory) {
                    report.counts.unchanged += 1;
                } else {
                    report.counts.update += 1;
                    plans.push(Plan::Update(old, p, territory));
                }
            }
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
    report.finish();
    let mut outcome = Outcome { report, ..Outcome::default() };
    if !mode.writes() || !may_write(&outcome.report, mode) {
        return Ok(outcome);
    }
    let total = plans.len() as u64;
    let mut passwords = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| ImportError::Internal(e.to_string());
    passwords.write_record(["登录名", "姓名", "初始密码"]).map_err(csv_err)?;
    // Initial passwords and their argon2 hashes (the slow part: ~50 ms each), on every core.
    let creates = plans.iter().filter(|p| matches!(p, Plan::Create(..))).count();
    let mut secrets = hash_new_passwords(creates)?.into_iter();
    for (i, plan) in plans.into_iter().enumerate() {
        match plan {
            Plan::Create(p, territory) => {
                let (password, password_hash) =
                    secrets.next().ok_or_else(|| ImportError::Internal("a password is missing".into()))?;
                let person = Person {
                    id: gridsync_shared::PersonId(uuid::Uuid::new_v4()),
                    username: p.username.clone(),
                    name: p.name.clone(),
                    role: p.role,
                    territory,
                    password_hash,
                    created_at: now,
                };
                store.put_person(&person)?;
                passwords.write_record([p.username.as_str(), p.name.as_str(), password.as_str()]).map_err(csv_err)?;
                outcome.written.create += 1;
            }
            Plan::Update(old, p, territory) => {
                let mut updated = old.clone();
                updated.name = p.name.clone();
                updated.role = p.role;
                store.put_person(&updated)?;
                if old.territory != territory {
                    // A move, exactly as `person move` makes it (devices keep pushing their work).
                    let cmd = AdminCommand::Person(PersonCommand::Move {
                        username: old.username.clone(),
                        territory: territory.to_string(),
                    });
                    admin::execute(store, cmd, &who.actor)?;
                }
                outcome.written.update += 1;
            }
        }
        progress(i as u64 + 1, total);
    }
    store.flush()?;
    outcome.written.rows = outcome.report.counts.rows;
    outcome.written.unchanged = outcome.report.counts.unchanged;
    outcome.passwords_csv = passwords.into_inner().map_err(|e| ImportError::Internal(e.to_string()))?;
    Ok(outcome)
}

/// `n` random passwords with their hashes, hashed on all cores.
fn hash_new_passwords(n: usize) -> Result<Vec<(String, String)>, ImportError> {
    let passwords: Vec<String> = (0..n).map(|_| random_password()).collect();
    let threads = std::thread::available_parallelism().map_or(2, |c| c.get()).clamp(1, 8);
    let chunk = n.div_ceil(threads).max(1);
    let hashed: Vec<Result<Vec<String>, ApiError>> = std::thread::scope(|s| {
        let handles: Vec<_> = passwords
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| hash_password(p)).collect::<Result<Vec<_>, _>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(ApiError::Internal("hashing thread panicked".into()))))
            .collect()
    });
    let mut hashes = Vec::with_capacity(n);
    for part in hashed {
        hashes.extend(part?);
    }
    Ok(passwords.into_iter().zip(hashes).collect())
}
