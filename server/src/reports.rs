//! Administrators' reports: the figures of [`gridsync_shared::reports`] for a
//! territory and period, computed from the stored documents.
//!
//! Records are read one kind at a time from the rows the store keeps beside
//! their documents (a record without one from its document), on one worker
//! per core ([`crate::snapshot::read_records`]), and fed to the shared
//! [`ReportBuilder`] one by one, so memory holds a few hundred records and the
//! builder's per-grid counts, never the whole territory's records.

use crate::error::ApiError;
use crate::snapshot::{Moment, read_records, with_pool};
use crate::store::{Person, Store};
use gridsync_shared::reports::{Period, Report, ReportBuilder};
use gridsync_shared::{RecordKind, Role, TerritoryPath};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Documents read per page of the store.
pub const PAGE: usize = 500;

/// Computes the report for `scope` over `[from, to)` (Unix ms), with `now`
/// bounding overdue cases. Grids and communities the store knows get a row
/// (with their names) even when they hold no records. A stored document that
/// cannot be read as a record is logged and counted in
/// [`Report::unreadable_records`], not in any figure.
pub fn report(store: &dyn Store, scope: &TerritoryPath, from: i64, to: i64, now: i64) -> Result<Report, ApiError> {
    if to < from {
        return Err(ApiError::BadRequest(format!("the period ends ({to}) before it starts ({from})")));
    }
    let mut builder = ReportBuilder::new(scope.clone(), Period::new(from, to), now);
    for territory in store.territories()? {
        builder.territory(&territory.path, &territory.name);
    }
    with_pool(|pool| {
        for kind in RecordKind::ALL {
            for read in read_records(store, scope.clone(), kind, Moment::Now, false, Some(pool.clone())) {
                let read = read?;
                match read.record {
                    Ok(record) => builder.add(read.id, &record),
                    Err(error) => {
                        tracing::warn!(doc = %read.id, %error, "stored document left out of the report");
                        builder.unreadable();
                    }
                }
            }
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(builder.finish())
}

/// How the report is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The [`Report`] as JSON.
    Json,
    /// [`Report::to_csv`], as a download.
    Csv,
}

/// A checked `GET /v1/admin/report` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    /// The territory reported on.
    pub scope: TerritoryPath,
    /// Start of the period, Unix ms.
    pub from: i64,
    /// End of the period (exclusive), Unix ms.
    pub to: i64,
    /// JSON or CSV.
    pub format: Format,
}

impl ReportQuery {
    /// Checks a request by `person` with query parameters `params`: only an
    /// administrator may ask, for their territory or a territory inside it
    /// (`territory`, default theirs); `from` defaults to 0, `to` to `now`,
    /// `format` (`json` or `csv`) to JSON. Unknown or repeated parameters are refused.
    pub fn for_person(person: &Person, params: &[(String, String)], now: i64) -> Result<ReportQuery, ApiError> {
        if person.role != Role::Administrator {
            return Err(ApiError::Forbidden("only administrators may download reports".into()));
        }
        let mut q = ReportQuery { scope: person.territory.clone(), from: 0, to: now, format: Format::Json };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in params {
            if seen.contains(&key.as_str()) {
                return Err(ApiError::BadRequest(format!("query parameter `{key}` given twice")));
            }
            seen.push(key);
            let ms = |v: &str| {
                v.trim().parse::<i64>().map_err(|_| ApiError::BadRequest(format!("`{key}` must be Unix milliseconds")))
            };
            match key.as_str() {
                "from" => q.from = ms(value)?,
                "to" => q.to = ms(value)?,
                "territory" if value.is_empty() => {}
                "territory" => {
                    q.scope =
                        TerritoryPath::parse(value).map_err(|e| ApiError::BadRequest(format!("territory: {e}")))?
                }
                "format" => {
                    q.format = match value.as_str() {
                        "json" | "" => Format::Json,
                        "csv" => Format::Csv,
                        other => return Err(ApiError::BadRequest(format!("format {other:?}: use json or csv"))),
                    }
                }
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown query parameter `{other}`: use from, to, territory, format"
                    )));
                }
            }
        }
        if !person.territory.contains(&q.scope) {
            return Err(ApiError::Forbidden(format!("{} is outside your territory {}", q.scope, person.territory)));
        }
        if q.to < q.from {
            return Err(ApiError::BadRequest(format!("the period ends ({}) before it starts ({})", q.to, q.from)));
        }
        Ok(q)
    }

    /// What the audit log records of this request.
    pub fn describe(&self) -> String {
        let format = if self.format == Format::Csv { "csv" } else { "json" };
        format!("{} from={} to={} format={format}", self.scope, self.from, self.to)
    }
}

/// The HTTP answer: JSON, or CSV as a download (`report.csv`, UTF-8 with BOM).
pub fn reply(report: &Report, format: Format) -> Result<Response, ApiError> {
    let (body, content_type) = match format {
        Format::Json => {
            (serde_json::to_vec(report).map_err(|e| ApiError::Internal(e.to_string()))?, "application/json")
        }
        Format::Csv => (report.to_csv().into_bytes(), "text/csv; charset=utf-8"),
    };
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if format == Format::Csv {
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"report.csv\""));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
