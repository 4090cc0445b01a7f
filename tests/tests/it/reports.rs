//! Administrators' reports over real synced records: phones in three grids of
//! two communities record households, visits, cases, follow-ups and promises
//! at chosen times before, inside and after a period; the server's report for
//! that period must show exactly the counts this test tallies itself while it
//! creates them, per grid, per community and in total, as JSON and as CSV;
//! and nobody but an administrator gets it.

use gridsync_shared::photos::{NewPhoto, PhotoHash, PhotoType};
use gridsync_shared::records::{
    CaseFields, CaseKind, HouseholdFields, NewRecord, PromiseFields, Satisfaction, VisitFields, VisitKind,
};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{DocId, Role, TerritoryPath};
use gridsync_tests::server::CITY;
use gridsync_tests::{Phone, TestServer, now_ms};
use serde_json::Value;
use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Every count the report gives, tallied by the test as it creates records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    households: u64,
    needy_households: u64,
    households_covered: u64,
    needy_households_covered: u64,
    visits: u64,
    visits_with_photos: u64,
    dispute: u64,
    hazard: u64,
    petition: u64,
    request: u64,
    cases_found: u64,
    cases_with_photos: u64,
    cases_resolved: u64,
    overdue_cases: u64,
    promises_made: u64,
    promises_kept: u64,
    rated_follow_ups: u64,
    satisfied_follow_ups: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.households += o.households;
        self.needy_households += o.needy_households;
        self.households_covered += o.households_covered;
        self.needy_households_covered += o.needy_households_covered;
        self.visits += o.visits;
        self.visits_with_photos += o.visits_with_photos;
        self.dispute += o.dispute;
        self.hazard += o.hazard;
        self.petition += o.petition;
        self.request += o.request;
        self.cases_found += o.cases_found;
        self.cases_with_photos += o.cases_with_photos;
        self.cases_resolved += o.cases_resolved;
        self.overdue_cases += o.overdue_cases;
        self.promises_made += o.promises_made;
        self.promises_kept += o.promises_kept;
        self.rated_follow_ups += o.rated_follow_ups;
        self.satisfied_follow_ups += o.satisfied_follow_ups;
    }

    fn found(&mut self, kind: CaseKind) {
        self.cases_found += 1;
        match kind {
            CaseKind::Dispute => self.dispute += 1,
            CaseKind::Hazard => self.hazard += 1,
            CaseKind::Petition => self.petition += 1,
            CaseKind::Request => self.request += 1,
        }
    }

    /// The same counts read from a report row's JSON `figures`.
    fn from_json(f: &Value) -> Tally {
        let n = |key: &str| f[key].as_u64().unwrap_or_else(|| panic!("figure {key} missing in {f}"));
        let kind = |key: &str| f["cases_found_by_kind"][key].as_u64().unwrap_or_else(|| panic!("kind {key} in {f}"));
        Tally {
            households: n("households"),
            needy_households: n("needy_households"),
            households_covered: n("households_covered"),
            needy_households_covered: n("needy_households_covered"),
            visits: n("visits"),
            visits_with_photos: n("visits_with_photos"),
            dispute: kind("dispute"),
            hazard: kind("hazard"),
            petition: kind("petition"),
            request: kind("request"),
            cases_found: n("cases_found"),
            cases_with_photos: n("cases_with_photos"),
            cases_resolved: n("cases_resolved"),
            overdue_cases: n("overdue_cases"),
            promises_made: n("promises_made"),
            promises_kept: n("promises_kept"),
            rated_follow_ups: n("rated_follow_ups"),
            satisfied_follow_ups: n("satisfied_follow_ups"),
        }
    }

    /// (resolution, promises kept, satisfaction) rates as the test expects them.
    fn rates(&self) -> [Option<f64>; 3] {
        let rate = |a: u64, b: u64| (b > 0).then(|| (a as f64 / b as f64).min(1.0));
        [
            rate(self.cases_resolved, self.cases_found),
            rate(self.promises_kept, self.promises_made),
            rate(self.satisfied_follow_ups, self.rated_follow_ups),
        ]
    }

    /// The CSV cells after 区域, 名称, 层级, in the report's column order.
    fn csv_cells(&self) -> Vec<String> {
        let pct = |r: Option<f64>| r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default();
        let [resolution, kept, satisfaction] = self.rates();
        vec![
            self.households.to_string(),
            self.needy_households.to_string(),
            self.households_covered.to_string(),
            self.needy_households_covered.to_string(),
            self.visits.to_string(),
            self.visits_with_photos.to_string(),
            self.dispute.to_string(),
            self.hazard.to_string(),
            self.petition.to_string(),
            self.request.to_string(),
            self.cases_found.to_string(),
            self.cases_with_photos.to_string(),
            self.cases_resolved.to_string(),
            pct(resolution),
            self.overdue_cases.to_string(),
            self.promises_made.to_string(),
            self.promises_made.to_string(), // 到期承诺数: every promise here is due before the period ends
            self.promises_kept.to_string(),
            pct(kept),
            self.rated_follow_ups.to_string(),
            self.satisfied_follow_ups.to_string(),
            pct(satisfaction),
        ]
    }
}

/// A city with records in three grids of two communities, and what the test
/// expects the report for `[from, to)` to say.
struct City {
    server: TestServer,
    from: i64,
    to: i64,
    grids: Vec<TerritoryPath>,
    communities: Vec<TerritoryPath>,
    expected: BTreeMap<TerritoryPath, Tally>,
    /// Every visit log created, whatever its time (for the open-ended report).
    all_visits: u64,
}

/// Sets the phone's clock so that its next edit happens at `at`.
fn at(phone: &mut Phone, at: i64) -> &mut Phone {
    phone.clock = at - 1;
    phone
}

fn household(phone: &mut Phone, created: i64, needy: bool) -> DocId {
    let tags = if needy { vec!["困难群众".into()] } else { vec!["独居老人".into()] };
    let fields =
        HouseholdFields { address: "东湖路8号".into(), head: "王建国".into(), tags, ..Default::default() };
    phone.replica.create(None, created, &NewRecord::Household(fields)).expect("household")
}

fn visit(phone: &mut Phone, visited: i64, household: Option<DocId>) -> DocId {
    let fields =
        VisitFields { household, visited_at: visited, kind: Some(VisitKind::Routine), ..VisitFields::default() };
    phone.replica.create(None, visited + HOUR, &NewRecord::VisitLog(fields)).expect("visit")
}

/// A photo reference (the report counts references; no bytes are uploaded).
fn photo(n: u64, taken_at: i64) -> NewPhoto {
    NewPhoto {
        sha256: PhotoHash::parse(&format!("{n:064x}")).expect("hash"),
        size: 2_000,
        mime: PhotoType::Jpeg,
        taken_at,
        location: None,
        follow_up: None,
    }
}

fn case(phone: &mut Phone, created: i64, kind: CaseKind, due_at: Option<i64>) -> DocId {
    let fields = CaseFields {
        kind,
        title: "楼道杂物堵塞".into(),
        description: String::new(),
        household: None,
        visit: None,
        due_at,
    };
    phone.replica.create(None, created, &NewRecord::Case(fields)).expect("case")
}

fn promise(phone: &mut Phone, created: i64) -> DocId {
    let fields = PromiseFields { content: "一周内修复路灯".into(), household: None, due_at: created + 7 * DAY };
    phone.replica.create(None, created, &NewRecord::Promise(fields)).expect("promise")
}

async fn sync_all(phone: &mut Phone) {
    phone.sync().await.expect("sync");
    assert_eq!(phone.replica.rejections().count(), 0, "the server refused a record");
    assert_eq!(phone.replica.pending_changes(), 0, "changes left unsynced");
}

const KINDS: [CaseKind; 4] = [CaseKind::Dispute, CaseKind::Hazard, CaseKind::Petition, CaseKind::Request];

async fn city() -> City {
    let server = TestServer::start().await;
    let now = now_ms();
    let from = now - 30 * DAY;
    let to = now - 20 * DAY;
    let (before, after) = (from - 5 * DAY, to + DAY);
    let inside = |n: i64| from + n * HOUR;

    let grids = vec![server.grid_in("c1", "g1"), server.grid_in("c1", "g2"), server.grid_in("c2", "g3")];
    let communities: Vec<TerritoryPath> = vec![grids[0].parent().expect("c1"), grids[2].parent().expect("c2")];
    let city: TerritoryPath = CITY.parse().expect("city");
    let mut supervisor = server.supervisor_phone(&city).await;
    let mut expected = BTreeMap::new();
    let mut all_visits = 0;
    // What the supervisor does once the staff's records have reached it.
    let mut to_verify = Vec::new();
    let mut to_reopen = Vec::new();

    for (g, grid) in grids.iter().enumerate() {
        let k = g as u64 + 1; // each grid gets different counts
        let mut t = Tally::default();
        let mut phone = server.phone_in(grid).await;

        // Households: k + 1 before the period (every other one needy), one
        // made in it (needy), one made after it (not in the stock).
        let old: Vec<(DocId, bool)> =
            (0..=k).map(|i| (household(&mut phone, before + i as i64, i % 2 == 0), i % 2 == 0)).collect();
        let new = household(&mut phone, inside(1), true);
        let later = household(&mut phone, after, true);
        t.households = k + 2;
        t.needy_households = old.iter().filter(|(_, needy)| *needy).count() as u64 + 1;

        // Visits: the first k old households in the period (the first twice),
        // the new one only before it, the later one in it (not in the stock),
        // one visit to nobody in particular, one after the period.
        for (i, (id, needy)) in old.iter().take(k as usize).enumerate() {
            let v = visit(&mut phone, inside(2 + i as i64), Some(*id));
            if i == 0 {
                // The first visit of each grid has photo evidence.
                at(&mut phone, inside(29)).edit(v, |e| e.add_photos(&[photo(k, inside(29))])).expect("photo");
                t.visits_with_photos += 1;
            }
            t.visits += 1;
            t.households_covered += 1;
            t.needy_households_covered += u64::from(*needy);
        }
        visit(&mut phone, inside(20), Some(old[0].0));
        let old_visit = visit(&mut phone, before, Some(new));
        at(&mut phone, inside(29)).edit(old_visit, |e| e.add_photos(&[photo(10 + k, inside(29))])).expect("photo");
        visit(&mut phone, inside(21), Some(later));
        visit(&mut phone, inside(22), None);
        visit(&mut phone, after, Some(old[0].0));
        t.visits += 3;
        all_visits += k + 5;

        // Cases: k + 2 found in the period, one older and one later.
        let found: Vec<DocId> = (0..k + 2)
            .map(|j| {
                let kind = KINDS[((j + k) % 4) as usize];
                t.found(kind);
                let due = match j {
                    1 => Some(inside(3)),   // resolved, then reopened: overdue
                    2 => Some(after + DAY), // due after the period: not overdue
                    3 => Some(from - DAY),  // never touched: overdue
                    _ => None,
                };
                case(&mut phone, inside(3 + j as i64), kind, due)
            })
            .collect();
        let older = case(&mut phone, before, CaseKind::Hazard, Some(before + DAY));
        case(&mut phone, after, CaseKind::Petition, None);
        t.overdue_cases += 1 + u64::from(k >= 2); // found[1], and found[3] where it exists
        // Photo evidence: found[0] on the case itself, found[1] only on a
        // follow-up; the older case's photo is not this period's.
        at(&mut phone, inside(29)).edit(found[0], |e| e.add_photos(&[photo(20 + k, inside(29))])).expect("photo");
        at(&mut phone, inside(29))
            .edit(found[1], |e| e.add_follow_up_with_photos("现场照片", None, &[photo(30 + k, inside(29))]))
            .expect("follow-up photo");
        at(&mut phone, inside(29)).edit(older, |e| e.add_photos(&[photo(40 + k, inside(29))])).expect("photo");
        t.cases_with_photos += 2;

        // found[0]: resolved in the period (then verified and closed by the supervisor).
        phone.advance(found[0], CaseStatus::InProgress).expect("in progress");
        at(&mut phone, inside(30)).advance(found[0], CaseStatus::Resolved).expect("resolve");
        to_verify.push(found[0]);
        t.cases_resolved += 1;
        // older: a backlog case resolved in the period counts as resolved in it.
        at(&mut phone, inside(31)).advance(older, CaseStatus::Resolved).expect("resolve older");
        t.cases_resolved += 1;
        // found[1]: resolved in the period, reopened by the supervisor: not resolved.
        at(&mut phone, inside(32)).advance(found[1], CaseStatus::Resolved).expect("resolve");
        to_reopen.push(found[1]);
        // found[2]: only in progress.
        at(&mut phone, inside(33)).advance(found[2], CaseStatus::InProgress).expect("in progress");

        // Follow-ups with residents' satisfaction on the older case.
        let ratings: Vec<Satisfaction> = (0..k + 1)
            .map(|i| [Satisfaction::Satisfied, Satisfaction::Dissatisfied, Satisfaction::Basic][i as usize % 3])
            .collect();
        for (i, s) in ratings.iter().enumerate() {
            at(&mut phone, inside(40 + i as i64)).edit(older, |e| e.add_follow_up("回访", Some(*s))).expect("rate");
            t.rated_follow_ups += 1;
            t.satisfied_follow_ups += u64::from(*s != Satisfaction::Dissatisfied);
        }
        at(&mut phone, inside(50)).edit(older, |e| e.add_follow_up("已联系物业", None)).expect("note");
        at(&mut phone, after).edit(older, |e| e.add_follow_up("回访", Some(Satisfaction::Satisfied))).expect("late");

        // Promises: k + 1 made in the period; the first kept, the second
        // kept and then broken (the latest outcome counts), the rest open;
        // one made before the period and kept in it.
        let promises: Vec<DocId> = (0..=k).map(|i| promise(&mut phone, inside(60 + i as i64))).collect();
        t.promises_made += k + 1;
        at(&mut phone, inside(70)).edit(promises[0], |e| e.record_promise_outcome(true, "已修复")).expect("kept");
        t.promises_kept += 1;
        at(&mut phone, inside(71)).edit(promises[1], |e| e.record_promise_outcome(true, "已修复")).expect("kept");
        at(&mut phone, inside(72)).edit(promises[1], |e| e.record_promise_outcome(false, "又坏了")).expect("broken");
        let old_promise = promise(&mut phone, before);
        at(&mut phone, inside(73)).edit(old_promise, |e| e.record_promise_outcome(true, "已办")).expect("kept");

        sync_all(&mut phone).await;
        expected.insert(grid.clone(), t);
    }

    sync_all(&mut supervisor).await;
    for id in to_verify {
        at(&mut supervisor, inside(80)).advance(id, CaseStatus::Verified).expect("verify");
        at(&mut supervisor, inside(81)).advance(id, CaseStatus::Closed).expect("close");
    }
    for id in to_reopen {
        at(&mut supervisor, inside(82))
            .edit(id, |e| e.reopen_case(CaseStatus::InProgress, "居民反映未解决"))
            .expect("reopen");
    }
    sync_all(&mut supervisor).await;

    for community in &communities {
        let mut sum = Tally::default();
        for (grid, t) in &expected {
            if community.contains(grid) {
                sum.add(t);
            }
        }
        expected.insert(community.clone(), sum);
    }
    let mut total = Tally::default();
    for grid in &grids {
        total.add(&expected[grid]);
    }
    expected.insert(city, total);
    City { server, from, to, grids, communities, expected, all_visits }
}

impl City {
    /// An administrator's token over the whole test city.
    async fn admin_token(&self) -> String {
        let username = self.server.person(Role::Administrator, &CITY.parse().expect("city"));
        self.server.phone_for(&username).await.token().to_string()
    }

    fn url(&self, query: &str) -> String {
        format!("{}/v1/admin/report?{query}", self.server.url)
    }
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request")
}

fn assert_rate(json: &Value, expected: Option<f64>, what: &str) {
    match expected {
        None => assert!(json.is_null(), "{what}: expected no rate, got {json}"),
        Some(r) => {
            let got = json.as_f64().unwrap_or_else(|| panic!("{what}: expected {r}, got {json}"));
            assert!((got - r).abs() < 1e-9, "{what}: expected {r}, got {got}");
        }
    }
}

#[tokio::test]
async fn the_json_report_matches_what_the_phones_recorded_per_grid_community_and_in_total() {
    let city = city().await;
    let token = city.admin_token().await;
    let resp = get(&city.url(&format!("from={}&to={}", city.from, city.to)), Some(&token)).await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.expect("json");

    assert_eq!(report["scope"], CITY);
    assert_eq!((report["period"]["from"].as_i64(), report["period"]["to"].as_i64()), (Some(city.from), Some(city.to)));
    assert_eq!(report["unreadable_records"], 0);
    let rows = report["rows"].as_array().expect("rows");
    let order: Vec<&str> = rows.iter().map(|r| r["territory"].as_str().expect("territory")).collect();
    let c = |i: usize| city.communities[i].as_str();
    let g = |i: usize| city.grids[i].as_str();
    assert_eq!(order, [c(0), g(0), g(1), c(1), g(2)], "each community followed by its grids");

    let mut rows: Vec<&Value> = rows.iter().collect();
    rows.push(&report["total"]);
    for row in rows {
        let path: TerritoryPath = row["territory"].as_str().expect("path").parse().expect("valid path");
        let want = city.expected.get(&path).unwrap_or_else(|| panic!("unexpected row {path}"));
        let level = if path.is_grid() {
            "grid"
        } else if path.as_str() == CITY {
            "sub_district"
        } else {
            "community"
        };
        assert_eq!(row["level"], level, "{path}");
        assert_eq!(Tally::from_json(&row["figures"]), *want, "figures of {path}");
        let [resolution, kept, satisfaction] = want.rates();
        assert_rate(&row["figures"]["resolution_rate"], resolution, "resolution rate");
        assert_rate(&row["figures"]["promises_kept_rate"], kept, "promises kept rate");
        assert_rate(&row["figures"]["satisfaction_rate"], satisfaction, "satisfaction rate");
    }
    assert_eq!(report["total"]["name"], "测试街道");
    // Sanity: the scenario exercises every figure somewhere.
    let total = city.expected[&CITY.parse::<TerritoryPath>().expect("city")];
    assert!(total.households_covered > 0 && total.overdue_cases > 0 && total.promises_kept > 0);
    assert!(total.cases_resolved > 0 && total.satisfied_follow_ups < total.rated_follow_ups);
}

#[tokio::test]
async fn the_csv_report_is_a_bom_prefixed_attachment_with_the_same_figures_and_chinese_headers() {
    let city = city().await;
    let token = city.admin_token().await;
    let resp = get(&city.url(&format!("from={}&to={}&format=csv", city.from, city.to)), Some(&token)).await;
    assert_eq!(resp.status(), 200);
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(header("content-disposition"), "attachment; filename=\"report.csv\"");
    let bytes = resp.bytes().await.expect("body");
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 byte-order mark so Excel and WPS read Chinese");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "区域,名称,层级,住户数,困难群众户数,走访覆盖户数,联系困难群众户数,走访次数,有照片的走访,矛盾纠纷,安全隐患,信访,群众诉求,\
         发现事件合计,有照片的事件,办结事件,办结率,超期未办结,承诺事项,到期承诺数,践诺数,践诺落实率,回访评价数,满意数,群众满意率"
    );
    assert_eq!(lines.len(), 1 + 5 + 1, "header, two communities and three grids, total");
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let path: TerritoryPath = cells[0].parse().expect("path");
        let want = city.expected.get(&path).unwrap_or_else(|| panic!("unexpected row {path}"));
        assert_eq!(cells[3..], want.csv_cells(), "row {path}");
        let (name, level) = if path.is_grid() {
            ("测试网格", "网格")
        } else if path.as_str() == CITY {
            ("测试街道", "合计（街道/乡镇）")
        } else {
            ("测试社区", "社区/村")
        };
        assert_eq!(cells[1..3], [name, level], "row {path}");
    }
    assert!(lines[lines.len() - 1].starts_with(&format!("{CITY},")), "the total comes last");
}

#[tokio::test]
async fn a_report_for_one_community_has_its_grids_and_without_a_period_covers_everything_until_now() {
    let city = city().await;
    let token = city.admin_token().await;
    let community = &city.communities[0];
    let report: Value =
        get(&city.url(&format!("territory={community}&from={}&to={}", city.from, city.to)), Some(&token))
            .await
            .json()
            .await
            .expect("json");
    let rows: Vec<&str> =
        report["rows"].as_array().expect("rows").iter().filter_map(|r| r["territory"].as_str()).collect();
    assert_eq!(rows, [city.grids[0].as_str(), city.grids[1].as_str()]);
    assert_eq!(Tally::from_json(&report["total"]["figures"]), city.expected[community]);

    let everything: Value = get(&city.url(""), Some(&token)).await.json().await.expect("json");
    assert_eq!(everything["period"]["from"], 0);
    let to = everything["period"]["to"].as_i64().expect("to");
    assert!(to >= city.to + 20 * DAY - 60_000, "`to` defaults to now");
    assert_eq!(everything["total"]["figures"]["visits"].as_u64(), Some(city.all_visits));
}

#[tokio::test]
async fn only_administrators_get_reports_and_only_for_their_own_territory() {
    let city = city().await;
    let url = city.url(&format!("from={}&to={}", city.from, city.to));
    let staff = city.server.phone_in(&city.grids[0]).await;
    assert_eq!(get(&url, Some(staff.token())).await.status(), 403, "field staff");
    let supervisor = city.server.supervisor_phone(&CITY.parse().expect("city")).await;
    assert_eq!(get(&url, Some(supervisor.token())).await.status(), 403, "supervisor");
    assert_eq!(get(&url, None).await.status(), 401, "no token");
    assert_eq!(get(&url, Some("not-a-token")).await.status(), 401, "a made-up token");

    // An administrator of one community cannot see the other, nor the city.
    let username = city.server.person(Role::Administrator, &city.communities[0]);
    let admin = city.server.phone_for(&username).await;
    let other = city.url(&format!("territory={}", city.communities[1]));
    let resp = get(&other, Some(admin.token())).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.expect("error body");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(get(&city.url(&format!("territory={CITY}")), Some(admin.token())).await.status(), 403);
    let own: Value = get(&city.url(""), Some(admin.token())).await.json().await.expect("json");
    assert_eq!(own["scope"], city.communities[0].as_str(), "the territory defaults to the administrator's");

    // Malformed requests are refused with a reason.
    for bad in ["from=yesterday", "format=pdf", "from=10&to=5", "territory=A/B", "color=red", "from=1&from=2"] {
        let resp = get(&city.url(bad), Some(admin.token())).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
}
