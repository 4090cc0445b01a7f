//! `GET /metrics`: after phones sync, a push is refused and a guesser is
//! throttled, the Prometheus text shows exactly those counts, every line
//! follows the exposition format's grammar, and the sync latency histogram
//! counts every sync. Only loopback may read it unless a token is set, and
//! never through a proxy.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, ROOT};
use gridsync_server::Limits;
use gridsync_server::metrics::MetricsAccess;
use gridsync_shared::protocol::{DocPush, PushOutcome};
use gridsync_tests::TestServer;
use std::collections::{BTreeMap, HashMap};

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition, checked line by line against the text format 0.0.4.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample named `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> = self.samples.iter().filter(|s| s.name == name && s.labels == want).collect();
        assert!(found.len() <= 1, "{name}{labels:?} appears {} times", found.len());
        found.first().map(|s| s.value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// `{a="x",b="y\"z"}` → labels, and what follows the closing brace.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("a label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The family a sample belongs to, given the declared types.
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || (t == "summary" && suffix != "_bucket"))
        {
            return Some(base);
        }
    }
    None
}

/// Parses and checks the text: every line a comment (`# HELP`, `# TYPE`) or a
/// sample; names and label names well formed; one TYPE per family, before its
/// samples; every sample of a declared family; counters named `_total` and
/// never negative; histograms' buckets cumulative in `le` order, ending at
/// `+Inf`, which equals `_count`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut helped: HashMap<String, ()> = HashMap::new();
    let mut seen_samples_of: HashMap<String, ()> = HashMap::new();
    if !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_))
                    if !is_metric_name(name) || helped.insert(name.into(), ()).is_some() =>
                {
                    return Err(at("bad or repeated HELP".into()));
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_metric_name(name) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if out.types.insert(name.into(), kind.into()).is_some() {
                        return Err(at("a second TYPE".into()));
                    }
                    if seen_samples_of.contains_key(name) {
                        return Err(at("TYPE after the family's samples".into()));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        if line.trim().is_empty() {
            return Err(at("an empty line".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.strip_prefix(' ').ok_or_else(|| at("no space before the value".into()))?.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|e| at(format!("timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let fam = family(name, &out.types).ok_or_else(|| at("a sample of no declared family".into()))?;
        seen_samples_of.insert(fam.to_string(), ());
        if out.types[fam] == "counter" && (!fam.ends_with("_total") || value < 0.0) {
            return Err(at("a counter must be named _total and not be negative".into()));
        }
        out.samples.push(Sample { name: name.into(), labels, value });
    }
    for (fam, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        let buckets: Vec<(f64, f64)> = out
            .samples
            .iter()
            .filter(|s| s.name == format!("{fam}_bucket"))
            .map(|s| Ok((parse_value(s.labels.get("le").ok_or("a bucket without le")?)?, s.value)))
            .collect::<Result<_, String>>()?;
        if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
            return Err(format!("{fam}: the last bucket must be +Inf"));
        }
        if buckets.windows(2).any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1) {
            return Err(format!("{fam}: buckets must rise in le and be cumulative: {buckets:?}"));
        }
        let count = out.get(&format!("{fam}_count"), &[]);
        if buckets.last().map(|b| b.1) != Some(count) {
            return Err(format!("{fam}: the +Inf bucket must equal _count"));
        }
        out.get(&format!("{fam}_sum"), &[]);
    }
    Ok(out)
}

async fn scrape(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{url}/metrics"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("GET /metrics");
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, content_type, r.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_show_syncs_with_their_latency_a_refused_push_and_throttled_sign_ins_in_valid_exposition_format() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let mut other = server.phone_in(&grid).await;
    let mut syncs = 0;

    let visit = phone.record_visit("走访了三户");
    phone.report_case("楼道堆放杂物");
    syncs += phone.sync().await.expect("sync").len();
    syncs += other.sync().await.expect("sync").len();

    // A change to the visit written under someone else's actor: refused.
    let doc = phone.replica.document(visit).expect("visit on the phone");
    let mut fork = doc.fork();
    fork.set_actor(ActorId::random());
    let before = fork.get_heads();
    let mut tx = fork.transaction();
    tx.put(ROOT, "visited_at", automerge::ScalarValue::Timestamp(5)).expect("put");
    tx.commit_with(CommitOptions::default());
    let push =
        DocPush { doc: visit, changes: fork.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect() };
    let answer = other.push_raw(vec![push]).await.expect("sync");
    syncs += 1;
    let reason = match &answer.results[0].outcome {
        PushOutcome::Rejected(r) => r.reason.code(),
        outcome => panic!("expected a refusal, got {outcome:?}"),
    };

    // A guesser: after five failures the username waits, and is told 429.
    let http = reqwest::Client::new();
    let mut throttled = 0;
    for _ in 0..8 {
        let r = http
            .post(format!("{}/v1/auth/sign-in", server.url))
            .json(&serde_json::json!({"username": "nobody", "password": "guess", "device_name": "猜测"}))
            .send()
            .await
            .expect("sign-in");
        throttled += usize::from(r.status().as_u16() == 429);
    }
    assert!(throttled > 0, "some attempts were throttled");
    gridsync_server::metrics::backup_finished(1_700_000_000_000);

    let (status, content_type, text) = scrape(&server.url, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    assert_eq!(m.get("gridsync_syncs_total", &[]), syncs as f64, "{text}");
    assert_eq!(m.get("gridsync_sync_duration_seconds_count", &[]), syncs as f64, "every sync's latency is observed");
    assert!(m.get("gridsync_sync_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(m.types["gridsync_sync_duration_seconds"], "histogram");
    assert_eq!(m.get("gridsync_push_rejections_total", &[("reason", reason)]), 1.0, "{text}");
    assert_eq!(m.samples.iter().filter(|s| s.name == "gridsync_push_rejections_total").count(), 1);
    assert_eq!(m.get("gridsync_pushed_documents_total", &[("outcome", "accepted")]), 2.0);
    assert_eq!(m.get("gridsync_sign_in_throttled_total", &[]), throttled as f64);
    assert_eq!(m.get("gridsync_busy_responses_total", &[]), 0.0);
    assert_eq!(m.get("gridsync_sync_busy_total", &[]), 0.0);
    assert_eq!(m.get("gridsync_documents", &[("kind", "visit_log")]), 1.0);
    assert_eq!(m.get("gridsync_documents", &[("kind", "case")]), 1.0);
    assert_eq!(m.get("gridsync_documents", &[("kind", "household")]), 0.0);
    assert_eq!(m.get("gridsync_feed_head", &[]), server.store().head_seq().expect("head") as f64);
    assert!(m.get("gridsync_store_size_bytes", &[]) > 0.0);
    assert!(m.get("gridsync_open_connections", &[]) >= 1.0, "this scrape's own connection");
    assert!(m.get("gridsync_last_backup_timestamp_seconds", &[]) >= 1_700_000_000.0);
    assert_eq!(m.types["gridsync_last_backup_timestamp_seconds"], "gauge");
    assert_eq!(m.get("gridsync_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // The next sync is counted too, and the histogram keeps up with it.
    syncs += phone.sync().await.expect("sync").len();
    let (_, _, text) = scrape(&server.url, &[]).await;
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(m.get("gridsync_syncs_total", &[]), syncs as f64);
    assert_eq!(m.get("gridsync_sync_duration_seconds_count", &[]), syncs as f64);
}

#[test]
fn the_checker_refuses_text_that_breaks_the_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a_total 3\n",                                                                             // no TYPE
        "# TYPE a_total counter\na_total{x=1} 3\n",                                                // unquoted label
        "# TYPE a_total counter\na_total 3",                                                       // no final newline
        "# TYPE a_total counter\na_total three\n",                                                 // not a number
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                                                   // TYPE twice
        "# TYPE a counter\na 1\n", // counter without _total
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", // count != +Inf
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

#[tokio::test]
async fn metrics_answer_only_loopback_not_through_a_proxy_and_with_a_token_only_its_bearer() {
    let server = TestServer::start().await;
    let (status, _, _) = scrape(&server.url, &[]).await;
    assert_eq!(status, 200, "loopback may read");
    let (status, _, body) = scrape(&server.url, &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(status, 403, "relayed by a proxy: {body}");
    let (status, _, _) = scrape(&server.url, &[("forwarded", "for=203.0.113.9")]).await;
    assert_eq!(status, 403);

    let limits = Limits { metrics: MetricsAccess::Token("f3a9-long-random".into()), ..Limits::default() };
    let server = TestServer::start_with(limits).await;
    let (status, _, _) = scrape(&server.url, &[]).await;
    assert_eq!(status, 401, "with a token set, loopback needs it too");
    let (status, _, _) = scrape(&server.url, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(status, 401);
    let (status, _, text) =
        scrape(&server.url, &[("authorization", "Bearer f3a9-long-random"), ("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(status, 200);
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_backups_time_outlives_a_restart_and_counts_a_backup_made_while_the_server_was_stopped() {
    use gridsync_tests::process::{ServerProcess, free_port};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let last_backup = |text: &str| parse(text).expect("valid").value("gridsync_last_backup_timestamp_seconds", &[]);
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    assert_eq!(last_backup(&scrape(&server.url, &[]).await.2), Some(0.0), "no backup yet");
    server.kill().await;
    let started = gridsync_server::http::now_ms() as f64 / 1000.0;
    let file = dir.path().join("backup.gsbk");
    let out = ServerProcess::cli(&data, &["backup", "--out", file.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let at = last_backup(&scrape(&server.url, &[]).await.2).expect("gauge");
    assert!(at >= started.floor(), "the stopped server's backup at {at}, after {started}");
    server.kill().await;
}
