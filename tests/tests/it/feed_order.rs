//! The change feed with two real server processes on one PostgreSQL database
//! (issue 15): field-staff phones push through both processes at once while
//! readers page their scope's feed with the smallest page the server allows,
//! each page from the other process than the one before; no reader may miss
//! or repeat an acknowledged change. Always on PostgreSQL, whatever store the
//! rest of the suite runs on (the test process's throwaway PostgreSQL).

use automerge::{Change, ChangeHash};
use gridsync_shared::protocol::{DocBody, PAGE_BYTES_RANGE, PushOutcome, SyncRequest, SyncResponse, decode, encode};
use gridsync_shared::{DocId, TerritoryPath};
use gridsync_tests::process::{COMMUNITY, CliPerson, ServerProcess, city_on, free_port};
use gridsync_tests::proxy::{seed_from_env, size_from_env};
use gridsync_tests::stores::open_store;
use gridsync_tests::{Backend, Phone};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "feed-order-password";

/// The grids under the community, in order: a grid's index names it below.
const GRIDS: [&str; 3] = ["g1", "g2", "g3"];

/// Two writers in each grid, three field-staff readers (one per grid) and a
/// supervisor over the community.
const PEOPLE: [CliPerson<'static>; 10] = [
    CliPerson { username: "li", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "wang", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "zhang", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "liu", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "zhao", password: PASSWORD, role: "field_staff", territory: "g3" },
    CliPerson { username: "qian", password: PASSWORD, role: "field_staff", territory: "g3" },
    CliPerson { username: "zhuren", password: PASSWORD, role: "supervisor", territory: "" },
    CliPerson { username: "sun", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "zhou", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "wu", password: PASSWORD, role: "field_staff", territory: "g3" },
];

/// The writers and their grids: each has one phone on each process.
const WRITERS: [(&str, usize); 6] = [("li", 0), ("wang", 0), ("zhang", 1), ("liu", 1), ("zhao", 2), ("qian", 2)];

/// The readers: who, over which grid (None: the community), on which process first.
const READERS: [(&str, Option<usize>, usize); 5] =
    [("zhuren", None, 0), ("zhuren", None, 1), ("sun", Some(0), 1), ("zhou", Some(1), 0), ("wu", Some(2), 1)];

/// How long a reader may page after the writers stopped before its feed
/// counts as endless (a few hundred pages at most are left by then).
const DRAIN: Duration = Duration::from_secs(30);

/// How long a process may take to answer one sync request.
const ANSWER: Duration = Duration::from_secs(20);

/// The answer to a sync request, failing the test if none comes within [`ANSWER`]
/// (a server that never answers must fail the test, not hang it).
async fn answered<T>(who: &str, request: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(ANSWER, request).await {
        Ok(answer) => answer,
        Err(_) => panic!("{who}: no answer to a sync request within {} s", ANSWER.as_secs()),
    }
}

/// The processes' names in messages.
const PROCESS: [&str; 2] = ["A", "B"];

/// A change the server acknowledged (accepted, or already had) to a writer.
struct Acked {
    hash: ChangeHash,
    doc: DocId,
    grid: usize,
    writer: String,
}

/// A field-staff phone pushing new visit logs and follow-ups through one process.
struct Writer {
    name: String,
    grid: usize,
    phone: Phone,
    cases: Vec<DocId>,
    acked: Vec<Acked>,
    rejected: Vec<String>,
    failed: usize,
    made: usize,
}

impl Writer {
    /// One exchange through the real client core, noting which pushed
    /// changes the server acknowledged; returns whether more pages wait.
    async fn exchange(&mut self) -> bool {
        let bytes = self.phone.replica.build_request();
        let request: SyncRequest = decode(&bytes).expect("the replica's own request decodes");
        let answer = match answered(&self.name, self.phone.post_sync_patiently(&bytes)).await {
            Ok(answer) => answer,
            Err(e) => {
                // Not acknowledged, so not expected of any reader; pushed again next time.
                self.failed += 1;
                eprintln!("{}: an exchange failed: {e}", self.name);
                return false;
            }
        };
        let response: SyncResponse = decode(&answer).expect("the server's response decodes");
        assert_eq!(response.results.len(), request.push.len(), "{}: one verdict per pushed record", self.name);
        for (push, result) in request.push.iter().zip(&response.results) {
            assert_eq!(push.doc, result.doc, "{}: verdicts in request order", self.name);
            match &result.outcome {
                PushOutcome::Accepted | PushOutcome::Duplicate => {
                    for raw in &push.changes {
                        let change = Change::from_bytes(raw.clone()).expect("the replica pushes Automerge changes");
                        self.acked.push(Acked {
                            hash: change.hash(),
                            doc: push.doc,
                            grid: self.grid,
                            writer: self.name.clone(),
                        });
                    }
                }
                PushOutcome::Rejected(r) => self.rejected.push(format!("{}: {r:?}", push.doc)),
            }
        }
        self.phone.clock += 1;
        self.phone.replica.apply_response(&answer, self.phone.clock).expect("the replica takes the response");
        response.more
    }

    /// A small batch of new work: one to three visit logs, perhaps a
    /// follow-up on a case of the grid, now and then a new case.
    fn edit(&mut self, rng: &mut StdRng) {
        for _ in 0..rng.random_range(1..=3) {
            self.made += 1;
            self.phone.record_visit(&format!("{}：第{}次入户走访，楼道照明已报修", self.name, self.made));
        }
        if rng.random_bool(0.5)
            && let Some(&case) = self.cases.choose(rng)
        {
            self.phone.follow_up(case, &format!("{}：已电话回访住户", self.name));
        }
        if rng.random_bool(0.05) {
            self.cases.push(self.phone.report_case(&format!("{}：小区围墙破损", self.name)));
        }
    }
}

/// One page a reader received: from which process, when, and each change in it.
struct Page {
    process: usize,
    at: Duration,
    changes: Vec<(ChangeHash, DocId)>,
}

/// A phone that never pushes, paging its scope's feed with the smallest page,
/// each page from the other process than the one before.
struct Reader {
    name: String,
    scope: Option<usize>,
    phone: Phone,
    urls: [String; 2],
    next: usize,
    cursor: Option<Vec<u8>>,
    pages: Vec<Page>,
    /// Whole documents sent (page, record): a reader that starts on an empty
    /// feed and pushes nothing must get every change as a feed change.
    snapshots: Vec<(usize, DocId)>,
    failed: usize,
    failed_in_a_row: usize,
    /// Still told that more wait when [`DRAIN`] had passed after the writers stopped.
    undrained: bool,
}

impl Reader {
    /// Asks the next process for the next page; returns whether more wait.
    async fn page(&mut self, started: Instant) -> bool {
        let process = self.next;
        self.phone.move_to(&self.urls[process]);
        let request =
            SyncRequest { cursor: self.cursor.clone(), push: Vec::new(), max_response_bytes: PAGE_BYTES_RANGE.0 };
        let answer = match answered(
            &format!("{} on process {}", self.name, PROCESS[process]),
            self.phone.post_sync_patiently(&encode(&request)),
        )
        .await
        {
            Ok(answer) => answer,
            Err(e) => {
                // Nothing changed on the server: the same page is asked again.
                self.failed += 1;
                self.failed_in_a_row += 1;
                assert!(self.failed_in_a_row < 20, "{}: 20 pages in a row failed, the last with {e}", self.name);
                eprintln!("{}: a page failed: {e}", self.name);
                return true;
            }
        };
        self.next = 1 - process;
        self.failed_in_a_row = 0;
        let response: SyncResponse = decode(&answer).expect("the server's response decodes");
        let index = self.pages.len();
        let mut changes = Vec::new();
        for update in response.updates {
            match update.body {
                DocBody::Changes(raw) => {
                    for raw in raw {
                        let change = Change::from_bytes(raw).expect("the feed holds Automerge changes");
                        changes.push((change.hash(), update.doc));
                    }
                }
                DocBody::Snapshot(_) => self.snapshots.push((index, update.doc)),
            }
        }
        self.pages.push(Page { process, at: started.elapsed(), changes });
        self.cursor = Some(response.cursor);
        response.more
    }

    fn scope_name(&self) -> String {
        self.scope.map_or_else(|| COMMUNITY.to_string(), |g| format!("{COMMUNITY}/{}", GRIDS[g]))
    }
}

/// A change's feed position for messages.
fn feed_seq(seq: Option<u64>) -> String {
    seq.map_or_else(|| "not in the database's feed".to_string(), |s| format!("feed seq {s}"))
}

/// Where a change stands in the database's feed.
struct Placed {
    seq: u64,
    count: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_paging_both_server_processes_while_phones_push_through_both_miss_and_repeat_no_change() {
    let seconds = size_from_env("GRIDSYNC_FEED_ORDER_SECONDS", 4);
    let mut rng = StdRng::seed_from_u64(seed_from_env("GRIDSYNC_FEED_ORDER_SEED"));
    let dir = tempfile::tempdir().expect("tmp");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    city_on(Backend::Postgres, &data_a, &GRIDS, &PEOPLE).await;
    let a = ServerProcess::start_on(Backend::Postgres, &data_a, free_port(), &[]).await;
    let b = ServerProcess::start_beside(&data_a, &data_b, free_port()).await;
    let urls = [a.url.clone(), b.url.clone()];

    // The readers take their first page before anything is written: from
    // then on every change reaches them through the feed.
    let started = Instant::now();
    let mut readers = Vec::new();
    for (n, (who, scope, first)) in READERS.into_iter().enumerate() {
        let phone = Phone::sign_in(&urls[first], who, PASSWORD).await.expect("a reader signs in");
        let mut reader = Reader {
            name: format!("{who}#{n}"),
            scope,
            phone,
            urls: urls.clone(),
            next: first,
            cursor: None,
            pages: Vec::new(),
            snapshots: Vec::new(),
            failed: 0,
            failed_in_a_row: 0,
            undrained: false,
        };
        while reader.page(started).await {}
        assert!(reader.pages.iter().all(|p| p.changes.is_empty()), "{}: the feed starts empty", reader.name);
        readers.push(reader);
    }

    // Two phones per writer, one on each process; each grid's first phone
    // reports a case that all its grid's phones follow up on.
    let mut writers = Vec::new();
    for (who, grid) in WRITERS {
        for (process, url) in urls.iter().enumerate() {
            let phone = Phone::sign_in(url, who, PASSWORD).await.expect("a writer signs in");
            let name = format!("{who}@{}", PROCESS[process]);
            writers.push(Writer {
                name,
                grid,
                phone,
                cases: Vec::new(),
                acked: Vec::new(),
                rejected: Vec::new(),
                failed: 0,
                made: 0,
            });
        }
    }
    for grid in 0..GRIDS.len() {
        let first = writers.iter().position(|w| w.grid == grid).expect("a writer per grid");
        let case = writers[first].phone.report_case("楼道堆放杂物，消防通道堵塞");
        while writers[first].exchange().await {}
        for w in writers.iter_mut().filter(|w| w.grid == grid) {
            while w.exchange().await {}
            assert!(w.phone.replica.record(case).is_some(), "{} holds its grid's case", w.name);
            w.cases.push(case);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let reader_tasks: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            let done = done.clone();
            let mut rng = StdRng::seed_from_u64(rng.random());
            tokio::spawn(async move {
                let mut drain_until = None;
                loop {
                    // Read before the page: a page asked for after every writer
                    // stopped, with no more behind it, is the last word.
                    let finished = done.load(Ordering::SeqCst);
                    let more = reader.page(started).await;
                    if finished && !more {
                        return reader;
                    }
                    if finished && *drain_until.get_or_insert_with(|| Instant::now() + DRAIN) < Instant::now() {
                        reader.undrained = true;
                        return reader;
                    }
                    if !more {
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..4))).await;
                    }
                }
            })
        })
        .collect();
    let writing = Instant::now();
    let writing_from = started.elapsed();
    let writer_tasks: Vec<_> = writers
        .into_iter()
        .map(|mut writer| {
            let stop = stop.clone();
            let mut rng = StdRng::seed_from_u64(rng.random());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    writer.edit(&mut rng);
                    writer.exchange().await;
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
                }
                writer
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    stop.store(true, Ordering::SeqCst);
    let mut writers = Vec::new();
    for task in writer_tasks {
        writers.push(task.await.expect("a writer task"));
    }
    let wrote_for = writing.elapsed();
    let writing_until = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let mut readers = Vec::new();
    for task in reader_tasks {
        readers.push(task.await.expect("a reader task"));
    }
    a.kill().await;
    b.kill().await;

    // Every change's position in the database's feed, to name where a reader went wrong.
    let store = open_store(Backend::Postgres, &data_a);
    let community: TerritoryPath = COMMUNITY.parse().expect("the community's path");
    let placed: HashMap<ChangeHash, Placed> = tokio::task::spawn_blocking(move || {
        let mut placed: HashMap<ChangeHash, Placed> = HashMap::new();
        let mut after = 0;
        loop {
            let entries = store.feed_after(&community, after, 1_000).expect("the feed");
            let Some(last) = entries.last() else { return placed };
            after = last.seq;
            for entry in entries {
                for raw in entry.changes {
                    let hash = Change::from_bytes(raw).expect("the feed holds Automerge changes").hash();
                    placed.entry(hash).and_modify(|p| p.count += 1).or_insert(Placed { seq: entry.seq, count: 1 });
                }
            }
        }
    })
    .await
    .expect("reading the feed");

    let acked: Vec<&Acked> = writers.iter().flat_map(|w| &w.acked).collect();
    let rejected: Vec<&String> = writers.iter().flat_map(|w| &w.rejected).collect();
    let failed: usize =
        writers.iter().map(|w| w.failed).sum::<usize>() + readers.iter().map(|r| r.failed).sum::<usize>();
    let mut problems = Vec::new();
    for change in &acked {
        match placed.get(&change.hash) {
            None => problems.push(format!(
                "change {} (record {}, {}, pushed by {}) was acknowledged but is not in the database's feed",
                change.hash, change.doc, GRIDS[change.grid], change.writer
            )),
            Some(p) if p.count > 1 => problems.push(format!(
                "change {} (record {}) is in the database's feed {} times (first at seq {})",
                change.hash, change.doc, p.count, p.seq
            )),
            Some(_) => {}
        }
    }
    let seq_of = |hash: &ChangeHash| placed.get(hash).map(|p| p.seq);
    let (mut paged, mut pages, mut pages_while_writing) = (0usize, 0usize, 0usize);
    for reader in &readers {
        let name = format!("reader {} over {}", reader.name, reader.scope_name());
        // Each page's lowest and highest feed seq, and the highest the reader held before it.
        let ranges: Vec<(u64, u64)> = reader
            .pages
            .iter()
            .map(|page| {
                let seqs = page.changes.iter().filter_map(|(h, _)| seq_of(h));
                (seqs.clone().min().unwrap_or(0), seqs.max().unwrap_or(0))
            })
            .collect();
        let reached: Vec<u64> = ranges
            .iter()
            .scan(0, |top, &(_, high)| {
                let before = *top;
                *top = high.max(*top);
                Some(before)
            })
            .collect();
        let describe = |p: usize| {
            let page = &reader.pages[p];
            format!(
                "page {p} (served by process {}, {:.3} s in, after seq {}, the highest it had received) held {} changes at seqs {}..={}",
                PROCESS[page.process],
                page.at.as_secs_f64(),
                reached[p],
                page.changes.len(),
                ranges[p].0,
                ranges[p].1
            )
        };
        let mut received: HashMap<ChangeHash, Vec<usize>> = HashMap::new();
        for (p, page) in reader.pages.iter().enumerate() {
            pages += 1;
            paged += page.changes.len();
            if !page.changes.is_empty() && page.at >= writing_from && page.at <= writing_until {
                pages_while_writing += 1;
            }
            for (hash, _) in &page.changes {
                received.entry(*hash).or_default().push(p);
            }
        }
        if reader.undrained {
            problems.push(format!(
                "{name} was still told more changes wait after {} s of paging once the writers had stopped ({} pages in all)",
                DRAIN.as_secs(),
                reader.pages.len()
            ));
        }
        for &(p, doc) in &reader.snapshots {
            problems.push(format!(
                "{name} was sent record {doc} whole on page {p}: it started on an empty feed and pushes nothing, so every change must come as a feed change"
            ));
        }
        let mut repeats: Vec<(&ChangeHash, &Vec<usize>)> = received.iter().filter(|(_, ps)| ps.len() > 1).collect();
        repeats.sort_by_key(|(_, ps)| ps[1]);
        for (hash, ps) in repeats {
            let doc = reader.pages[ps[0]].changes.iter().find(|(h, _)| h == hash).map(|(_, d)| *d);
            let mut text = format!(
                "{name} received change {hash} (record {}, {}) {} times: first on {}",
                doc.map_or_else(|| "?".to_string(), |d| d.to_string()),
                feed_seq(seq_of(hash)),
                ps.len(),
                describe(ps[0])
            );
            for &p in &ps[1..] {
                let _ = write!(text, "; again on {}", describe(p));
            }
            problems.push(text);
        }
        let mut missed: Vec<&&Acked> = acked
            .iter()
            .filter(|c| reader.scope.is_none_or(|g| g == c.grid) && !received.contains_key(&c.hash))
            .collect();
        missed.sort_by_key(|c| seq_of(&c.hash));
        for change in missed {
            let seq = seq_of(&change.hash);
            let skipped_on = seq.and_then(|s| ranges.iter().position(|&(_, high)| high > s));
            let when = match skipped_on {
                Some(p) => format!("{} without it, and no page brought it later", describe(p)),
                None => "no page went past it".to_string(),
            };
            problems.push(format!(
                "{name} missed change {} (record {}, {}, pushed by {}, {}): {when}",
                change.hash,
                change.doc,
                GRIDS[change.grid],
                change.writer,
                feed_seq(seq)
            ));
        }
        let while_writing = reader
            .pages
            .iter()
            .filter(|p| !p.changes.is_empty() && p.at >= writing_from && p.at <= writing_until)
            .count();
        assert!(while_writing > 0, "{name} paged while the writers wrote");
    }
    let switches: usize =
        readers.iter().map(|r| r.pages.windows(2).filter(|w| w[0].process != w[1].process).count()).sum();
    eprintln!(
        "{} changes acknowledged to {} phones on two processes in {:.1} s ({:.0}/s), {} refused, {failed} failed exchanges; \
         {} readers paged {paged} changes in {pages} pages of at most {} bytes ({pages_while_writing} with changes while \
         the writers wrote; {switches} from the other process than the page before)",
        acked.len(),
        writers.len(),
        wrote_for.as_secs_f64(),
        acked.len() as f64 / wrote_for.as_secs_f64(),
        rejected.len(),
        readers.len(),
        PAGE_BYTES_RANGE.0
    );
    for refusal in rejected.iter().take(3) {
        eprintln!("refused: {refusal}");
    }
    assert!(acked.len() >= 100, "the writers got at least 100 changes acknowledged: {}", acked.len());
    let shown: Vec<&String> = problems.iter().take(12).collect();
    assert!(
        problems.is_empty(),
        "{} problems (first {}):\n{}",
        problems.len(),
        shown.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
