//! `gridsync-server import-city …`: the same import on a stopped server's
//! store, or through a running server's admin socket (the file is read by the
//! server, which runs on the same machine; progress comes back line by line).

use super::*;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// An import asked of the admin socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportCityRequest {
    /// What the file holds.
    pub kind: ImportKind,
    /// The file (absolute: the server reads it).
    pub file: PathBuf,
    /// Check only.
    pub dry_run: bool,
    /// Import the rows without problems, skip the others.
    pub skip_problems: bool,
    /// The administrator to import as (default: the one nearest the city's root).
    pub as_user: Option<String>,
}

/// One line the admin socket sends back during an import.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportLine {
    /// Written so far.
    Progress {
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
    /// The end.
    End(ImportEnd),
}

/// How an import from the command line ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportEnd {
    /// Whether it went through (a dry run: without problems).
    pub ok: bool,
    /// The report, as text.
    pub output: String,
    /// A people import's initial passwords (CSV), for the passwords file only.
    pub passwords_csv: Option<String>,
}

/// Runs an import request on `store` (the stopped server's, or the running
/// server's behind its admin socket).
pub fn execute(
    store: &dyn Store,
    req: &ImportCityRequest,
    progress: &mut ProgressFn<'_>,
) -> Result<ImportEnd, ImportError> {
    let who = Importer::for_cli(store, req.as_user.as_deref())?;
    let name = req.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if req.dry_run {
        let run = dry_run(store, &who, req.kind, &req.file, &name)?;
        let mut output = report_text(req.kind, &run.report, None);
        output.push_str(&format!("试运行：未写入任何数据（导入记录 {}）\n", run.id));
        return Ok(ImportEnd { ok: run.report.problems_total == 0, output, passwords_csv: None });
    }
    let mut run = ImportRun {
        id: new_run_id(),
        kind: req.kind,
        name,
        by: who.actor.clone(),
        created_at: crate::http::now_ms(),
        report: Report::default(),
        status: Status::DryRun,
        progress: Progress::default(),
        skip_problems: req.skip_problems,
        outcome: None,
        error: None,
        passwords_ready: false,
        scope: who.admin.as_ref().map(|a| a.territory.clone()),
    };
    let outcome = apply(store, &who, &mut run, &req.file, req.skip_problems, progress)?;
    let ok = run.status == Status::Done;
    let mut output = report_text(req.kind, &outcome.report, run.outcome.as_ref());
    if !ok {
        output.push_str("文件有问题，未写入任何数据；修正后重新导入，或加 --skip-problems 只导入没有问题的行\n");
    }
    // Handed to the passwords file only, so taken out of the store at once.
    let passwords_csv = if run.passwords_ready {
        store.take_import_secret(&run.id)?.map(|b| String::from_utf8_lossy(&b).into_owned())
    } else {
        None
    };
    if run.passwords_ready {
        run.passwords_ready = false;
        run.save(store)?;
    }
    Ok(ImportEnd { ok, output, passwords_csv })
}

/// Serves one import request on the admin socket: progress lines, then the end.
pub async fn serve(
    store: std::sync::Arc<dyn Store>,
    req: ImportCityRequest,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ImportLine>();
    let task = tokio::task::spawn_blocking(move || {
        let progress_tx = tx.clone();
        let mut progress = move |done, total| {
            let _ = progress_tx.send(ImportLine::Progress { done, total });
        };
        let end = execute(store.as_ref(), &req, &mut progress).unwrap_or_else(|e| ImportEnd {
            ok: false,
            output: e.to_string(),
            passwords_csv: None,
        });
        let _ = tx.send(ImportLine::End(end));
    });
    while let Some(line) = rx.recv().await {
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = task.await;
}

/// Sends an import to a running server's admin socket; `progress` sees each progress line.
pub async fn send(
    socket: &Path,
    req: &ImportCityRequest,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> std::io::Result<ImportEnd> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&crate::SocketRequest::ImportCity(req.clone()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(l) = lines.next_line().await? {
        match serde_json::from_str::<ImportLine>(&l).map_err(std::io::Error::other)? {
            ImportLine::Progress { done, total } => progress(done, total),
            ImportLine::End(end) => return Ok(end),
        }
    }
    Err(std::io::Error::other("the server closed the admin socket before the import ended"))
}
