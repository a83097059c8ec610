//! `pickleball._internal.Cluster`: a connection to a scheduler, and job execution on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ballista::prelude::SessionContextExt;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use pickleball_codec::token::ClusterToken;
use pyo3::exceptions::{
    PyConnectionError, PyPermissionError, PyRuntimeError, PyUserWarning, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::mpsc;

use crate::jobs::JobTicket;
use crate::plan::{decode_plan, inline_memory_tables, listing_paths, memory_table_ids};
use crate::rest::SchedulerHttp;
use crate::runtime::runtime;
use crate::standalone::Standalone;
use pickleball_executor::python::arrow::{batch_to_pyarrow, import_stream, schema_capsule};

pyo3::create_exception!(
    pickleball._internal,
    ExecutionError,
    pyo3::exceptions::PyException,
    "A job failed on the cluster."
);

/// Client setting: the largest in-memory table (bytes, once encoded) carried inside a plan.
const MAX_INLINE_TABLE_BYTES: &str = "pickleball.max_inline_table_bytes";

/// Turns an error from DataFusion or Ballista into a Python exception with its full text.
pub fn execution_error(e: DataFusionError) -> PyErr {
    ExecutionError::new_err(readable(&e.to_string()))
}

/// Ballista reports a failed task with Rust's `Debug` formatting
/// (`...DataFusionError(Execution("line\nline"))...`); show the inner message as text.
fn readable(text: &str) -> String {
    const MARK: &str = "Execution(\"";
    let Some(start) = text.rfind(MARK) else {
        return text.to_string();
    };
    let inner = &text[start + MARK.len()..];
    let Some(end) = inner.rfind("\")") else {
        return text.to_string();
    };
    let message = inner[..end]
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("\\'", "'");
    let context = text
        .split("Task failed due to runtime execution error")
        .next()
        .unwrap_or(text)
        .trim_end_matches([' ', ':']);
    format!("{context}: {message}")
}

/// Host and port of a `df://host:port` URL (scheme optional, port 50050 by default).
fn parse_url(url: &str) -> PyResult<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| {
                PyValueError::new_err(format!("invalid port in scheduler URL '{url}'"))
            })?;
            (host, port)
        }
        None => (rest, 50050),
    };
    if host.is_empty() {
        return Err(PyValueError::new_err(format!(
            "scheduler URL '{url}' has no host; expected df://host:port"
        )));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// A client of one pickleball cluster; owns the in-process cluster of `standalone()`.
#[pyclass(module = "pickleball._internal", frozen)]
pub struct Cluster {
    url: String,
    scheduler: SchedulerHttp,
    ctx: SessionContext,
    decoder: SessionContext,
    standalone: Mutex<Option<Standalone>>,
}

impl Cluster {
    fn new(
        host: &str,
        port: u16,
        mut settings: HashMap<String, String>,
        token: Option<ClusterToken>,
    ) -> Result<Self> {
        let limit = match settings.remove(MAX_INLINE_TABLE_BYTES) {
            Some(value) => value.parse::<usize>().map_err(|_| {
                DataFusionError::Configuration(format!(
                    "{MAX_INLINE_TABLE_BYTES} must be a number of bytes, got '{value}'"
                ))
            })?,
            None => pickleball_codec::DEFAULT_MAX_INLINE_TABLE_BYTES,
        };
        let mut config = pickleball_codec::session::with_pickleball_codecs_limited(
            datafusion::prelude::SessionConfig::new(),
            limit,
        );
        for (key, value) in &settings {
            config.options_mut().set(key, value)?;
        }
        if let Some(token) = &token {
            config = token.apply_to(config);
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let endpoint = format!("df://{host}:{port}");
        let ctx = runtime().block_on(SessionContext::remote_with_state(&endpoint, state))?;
        Ok(Self {
            url: endpoint,
            scheduler: SchedulerHttp {
                host: host.to_string(),
                port,
                token,
            },
            ctx,
            decoder: SessionContext::new(),
            standalone: Mutex::new(None),
        })
    }
}

/// The token to connect with: fails with `PermissionError` if the scheduler refuses this
/// client's token (or its lack of one), so a wrong token shows at `connect`, not at the first
/// query. The first request carries no token: a scheduler that admits anyone (perhaps not the
/// cluster's) never sees the credential, and gets none later (`needless` is then true: the
/// client was given a token the scheduler does not ask for, so anyone may use it).
fn admitted_token(
    host: &str,
    port: u16,
    token: Option<ClusterToken>,
    timeout: Duration,
) -> PyResult<(Option<ClusterToken>, bool)> {
    let status = |token: Option<ClusterToken>| {
        let scheduler = SchedulerHttp {
            host: host.to_string(),
            port,
            token,
        };
        let answer = runtime().block_on(async {
            tokio::time::timeout(timeout, scheduler.request("GET", "/api/version")).await
        });
        match answer {
            Ok(Ok((status, _))) => Some(status),
            // For the first query to report (a slow answer, a broken connection).
            _ => None,
        }
    };
    let refused = |reason: &str| {
        PyPermissionError::new_err(format!(
            "the pickleball scheduler at df://{host}:{port} refused this client: {reason}"
        ))
    };
    match (status(None), token) {
        (Some(200), Some(_)) => Ok((None, true)),
        (Some(401), None) => Err(refused(
            "it requires a token; pass token=... to pickleball.connect() or set PICKLEBALL_TOKEN",
        )),
        (Some(401), Some(token)) if status(Some(token.clone())) == Some(401) => {
            Err(refused("the token is not the cluster's"))
        }
        (_, token) => Ok((token, false)),
    }
}

/// Fails within `timeout` if nothing accepts TCP connections at `host:port`.
fn probe(host: &str, port: u16, timeout: Duration) -> PyResult<()> {
    let url = format!("df://{host}:{port}");
    let outcome = runtime().block_on(async {
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await
    });
    let cause = match outcome {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {timeout:?}"),
    };
    Err(PyConnectionError::new_err(format!(
        "cannot reach the pickleball scheduler at {url}: {cause}. Check that a scheduler is \
         running there (`pickleball scheduler --bind-port {port}`) and reachable from this \
         machine, or use pickleball.standalone() for an in-process cluster."
    )))
}

#[pymethods]
impl Cluster {
    /// Connects to the scheduler at `url` (`df://host:port`), failing within
    /// `connect_timeout` seconds if it cannot be reached or refuses `token`.
    #[staticmethod]
    #[pyo3(signature = (url, settings=HashMap::new(), connect_timeout=5.0, token=None))]
    fn connect(
        py: Python<'_>,
        url: &str,
        settings: HashMap<String, String>,
        connect_timeout: f64,
        token: Option<&str>,
    ) -> PyResult<Self> {
        let (host, port) = parse_url(url)?;
        let token = ClusterToken::from_option(token).map_err(PyValueError::new_err)?;
        let timeout = Duration::try_from_secs_f64(connect_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "connect_timeout must be a positive number of seconds, got {connect_timeout}"
                ))
            })?;
        let (cluster, needless_token) = py.detach(|| {
            probe(&host, port, timeout)?;
            let (token, needless_token) = admitted_token(&host, port, token, timeout)?;
            let cluster = Self::new(&host, port, settings, token).map_err(execution_error)?;
            Ok::<_, PyErr>((cluster, needless_token))
        })?;
        if needless_token {
            let message = format!(
                "the pickleball scheduler at {} requires no token, so the token was not sent: \
                 anyone who can reach it may use it; start the scheduler and executors with \
                 PICKLEBALL_TOKEN to close it",
                cluster.url
            );
            let message = std::ffi::CString::new(message).expect("no NUL in the message");
            // Level 2: the warning points at the user's `pickleball.connect(...)` line.
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 2)?;
        }
        Ok(cluster)
    }

    /// Starts an in-process scheduler and `executors` executors and connects to them.
    #[staticmethod]
    #[pyo3(signature = (executors=1, vcores=0, settings=HashMap::new(), bind_host="127.0.0.1", port=0))]
    fn standalone(
        py: Python<'_>,
        executors: usize,
        vcores: usize,
        settings: HashMap<String, String>,
        bind_host: &str,
        port: u16,
    ) -> PyResult<Self> {
        py.detach(|| {
            let cluster =
                Standalone::start(bind_host, port, executors, vcores, None).map_err(|e| {
                    PyRuntimeError::new_err(format!("starting the standalone cluster: {e}"))
                })?;
            let client =
                Self::new("127.0.0.1", cluster.port(), settings, None).map_err(execution_error)?;
            *client.standalone.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
            Ok(client)
        })
    }

    /// The scheduler URL, `df://host:port`.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// True for a cluster started by `standalone()` that is still running.
    #[getter]
    fn is_standalone(&self) -> bool {
        self.standalone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops the in-process cluster of `standalone()`; a no-op for remote clusters.
    fn close(&self, py: Python<'_>) {
        let cluster = self
            .standalone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        py.detach(move || drop(cluster));
    }

    /// Submits a plan (bytes of `LogicalPlan.to_bytes()`) and streams its result.
    ///
    /// `memory_tables` maps placeholder ids to Arrow data (anything with `__arrow_c_stream__`);
    /// only the tables the plan reads are imported. With `inline_udfs` false, Python UDFs go
    /// by name and run the code registered on the executors (`--udf-module`).
    #[pyo3(signature = (plan, memory_tables, inline_udfs = true))]
    fn execute(
        &self,
        py: Python<'_>,
        plan: &[u8],
        memory_tables: &Bound<'_, PyDict>,
        inline_udfs: bool,
    ) -> PyResult<ResultStream> {
        let plan = decode_plan(plan, &self.decoder, inline_udfs).map_err(execution_error)?;
        let mut tables = HashMap::new();
        for id in memory_table_ids(&plan).map_err(execution_error)? {
            let data = memory_tables.get_item(&id)?.ok_or_else(|| {
                PyValueError::new_err(format!("in-memory table {id} is not registered"))
            })?;
            tables.insert(id, import_stream(&data)?);
        }
        let plan = inline_memory_tables(plan, &tables).map_err(execution_error)?;
        let inputs = listing_paths(&plan).map_err(execution_error)?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let (ticket, ctx) =
            JobTicket::issue(&self.ctx, &self.scheduler).map_err(execution_error)?;
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(4);
        py.detach(|| {
            runtime().spawn(run_job(ctx, plan, inputs, tx));
        });
        Ok(ResultStream {
            rx: Mutex::new(rx),
            schema,
            ticket: Arc::new(ticket),
        })
    }
}

/// Submissions of one plan when the cluster loses an executor before any result arrived.
const MAX_ATTEMPTS: usize = 3;

/// True for failures caused by losing an executor or a connection, not by the query.
///
/// Ballista retries tasks whose executor is declared lost, but fails the whole job when a
/// shuffle stream breaks in the middle of a read; resubmitting the job then succeeds on the
/// surviving executors. Query errors (bad SQL, a missing file, a failing UDF) never match.
fn is_infrastructure_failure(error: &DataFusionError) -> bool {
    const SIGNS: [&str; 7] = [
        "h2 protocol error",
        "broken pipe",
        "tcp connect error",
        "Connection refused",
        "connection reset",
        "transport error",
        "executor lost",
    ];
    let text = error.to_string();
    SIGNS
        .iter()
        .any(|sign| text.to_lowercase().contains(&sign.to_lowercase()))
}

/// Runs `plan` and forwards its batches to `tx`, resubmitting after infrastructure failures
/// that happen before the first batch.
async fn run_job(
    ctx: SessionContext,
    plan: LogicalPlan,
    inputs: Vec<String>,
    tx: mpsc::Sender<Result<RecordBatch>>,
) {
    let tx = ErrorContext { tx, inputs };
    let mut attempt = 1;
    loop {
        let stream = async {
            ctx.execute_logical_plan(plan.clone())
                .await?
                .execute_stream()
                .await
        };
        let mut stream = match stream.await {
            Ok(stream) => stream,
            Err(e) if attempt < MAX_ATTEMPTS && is_infrastructure_failure(&e) => {
                log::warn!("job failed ({e}); resubmitting (attempt {})", attempt + 1);
                attempt += 1;
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut sent_any = false;
        let mut resubmit = false;
        while let Some(item) = stream.next().await {
            match item {
                Err(e) if !sent_any && attempt < MAX_ATTEMPTS && is_infrastructure_failure(&e) => {
                    log::warn!("job failed ({e}); resubmitting (attempt {})", attempt + 1);
                    resubmit = true;
                    break;
                }
                item => {
                    sent_any = true;
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !resubmit {
            return;
        }
        attempt += 1;
    }
}

/// Forwards results, adding to data-reading errors the files the job read: DataFusion's
/// Parquet/CSV/JSON errors often do not name the file.
struct ErrorContext {
    tx: mpsc::Sender<Result<RecordBatch>>,
    inputs: Vec<String>,
}

impl ErrorContext {
    async fn send(
        &self,
        item: Result<RecordBatch>,
    ) -> std::result::Result<(), mpsc::error::SendError<Result<RecordBatch>>> {
        let item = item.map_err(|e| {
            let text = e.to_string();
            let about_files = [
                "Parquet error",
                "Csv error",
                "Json error",
                "IO error",
                "Object Store",
            ]
            .iter()
            .any(|sign| text.contains(sign));
            if about_files && !self.inputs.is_empty() {
                let shown: Vec<&str> = self.inputs.iter().take(5).map(String::as_str).collect();
                DataFusionError::Execution(format!(
                    "{text}\n(the job reads: {}{})",
                    shown.join(", "),
                    if self.inputs.len() > 5 { ", ..." } else { "" }
                ))
            } else {
                e
            }
        });
        self.tx.send(item).await
    }
}

/// `batch` with the column types of the plan's `schema` where they differ and a cast exists.
///
/// Arrow Flight's encoder (arrow-flight 59, `prepare_field_for_flight`) sends `LargeList`
/// columns as `List`, so results read through Ballista lose the large variant; the plan on the
/// client still knows the declared type. Anything that cannot be cast is left as it came.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> RecordBatch {
    if batch.num_columns() != schema.fields().len()
        || batch
            .schema()
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(got, want)| got.data_type() == want.data_type())
    {
        return batch;
    }
    let columns: Option<Vec<_>> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, want)| {
            if column.data_type() == want.data_type() {
                Some(Arc::clone(column))
            } else {
                arrow::compute::cast(column, want.data_type()).ok()
            }
        })
        .collect();
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .map(|(got, want)| {
            Arc::new(
                got.as_ref()
                    .clone()
                    .with_data_type(want.data_type().clone()),
            )
        })
        .collect();
    let conformed = columns.and_then(|columns| {
        let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            batch.schema().metadata().clone(),
        ));
        RecordBatch::try_new(schema, columns).ok()
    });
    conformed.unwrap_or(batch)
}

/// Batches of one job's result, in order, as they arrive from the cluster.
#[pyclass(module = "pickleball._internal", frozen)]
pub struct ResultStream {
    rx: Mutex<mpsc::Receiver<Result<RecordBatch>>>,
    schema: SchemaRef,
    /// Cancels the job when the stream is interrupted or dropped before its end.
    ticket: Arc<JobTicket>,
}

impl Drop for ResultStream {
    fn drop(&mut self) {
        let ticket = Arc::clone(&self.ticket);
        runtime().spawn(async move {
            if let Ok(true) = ticket.cancel().await {
                log::info!(
                    "cancelled job '{}': its results were not read",
                    ticket.name()
                );
            }
        });
    }
}

#[pymethods]
impl ResultStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next `pyarrow.RecordBatch`, waited for without holding the GIL and staying
    /// responsive to Ctrl-C, which cancels the job on the cluster.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rt = runtime();
        loop {
            let next = py.detach(|| {
                let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
                })
            });
            match next {
                Ok(Some(Ok(batch))) => {
                    return batch_to_pyarrow(py, &conform(batch, &self.schema)).map(Some);
                }
                Ok(Some(Err(e))) => {
                    self.ticket.finish();
                    return Err(execution_error(e));
                }
                Ok(None) => {
                    self.ticket.finish();
                    return Ok(None);
                }
                Err(_) => {
                    if let Err(interrupted) = py.check_signals() {
                        self.cancel(py);
                        return Err(interrupted);
                    }
                }
            }
        }
    }

    /// Cancels the job on the cluster unless it has finished; returns whether it was
    /// running (or queued) and is now cancelled. Waits at most a few seconds for the
    /// scheduler.
    fn cancel(&self, py: Python<'_>) -> bool {
        let ticket = &self.ticket;
        match py.detach(|| runtime().block_on(ticket.cancel())) {
            Ok(cancelled) => cancelled,
            Err(e) => {
                log::warn!("could not cancel job '{}': {e}", ticket.name());
                false
            }
        }
    }

    /// The Arrow PyCapsule schema protocol, for `pyarrow.schema(stream)`.
    fn __arrow_c_schema__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyCapsule>> {
        schema_capsule(py, &self.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn task_errors_in_debug_form_become_plain_text() {
        let raw = r#"Execution error: Job J failed: Job failed due to stage 0 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(DataFusionError(Execution("Python UDF 'f' raised ValueError: bad\nTraceback (most recent call last):\n  File \"x.py\"")))))"#;
        assert_eq!(
            readable(raw),
            "Execution error: Job J failed: Job failed due to stage 0 failed: Python UDF 'f' \
             raised ValueError: bad\nTraceback (most recent call last):\n  File \"x.py\""
        );
        assert_eq!(readable("plain message"), "plain message");
    }
}
