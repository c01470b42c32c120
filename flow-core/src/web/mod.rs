//! The web dashboard, the REST API and the Prometheus endpoint of a job binary, served by
//! the job itself (feature `web`, on by default): axum on a one-thread tokio runtime of its
//! own, away from the worker pool. It reads the counters the runtime keeps anyway
//! ([`crate::runtime::metrics`]) and samples them once a second for rates; the processing
//! threads never wait for it.
//!
//! Routes, in Flink's REST shape where it fits:
//! * `GET /` — the dashboard (one page, embedded; no CDN).
//! * `GET /overview`, `GET /jobs`, `GET /jobs/overview`.
//! * `GET /jobs/{id}` — status, plan with stages, fused operators and exchanges, and per
//!   stage throughput, backpressure (`OK` / `LOW` / `HIGH`), watermarks and progress.
//! * `GET /jobs/{id}/vertices/{vid}` — one stage's subtasks.
//! * `GET /jobs/{id}/checkpoints`, `GET /jobs/{id}/exceptions`.
//! * `POST /jobs/{id}/stop` — a clean stop (sources end, the job drains; with a savepoint
//!   directory it writes a savepoint).
//! * `GET /metrics` — Prometheus text format.
//!
//! ```no_run
//! use flow_core::prelude::*;
//! use flow_core::web::{Dashboard, WebOptions};
//! use std::sync::Arc;
//!
//! let dashboard = Arc::new(Dashboard::start(&WebOptions::default())?);
//! println!("dashboard at http://{}/", dashboard.addr());
//! let mut env = Env::new(Config::default().name("evens"));
//! env.observe(dashboard.clone());
//! env.generate(|i| i).filter(|i| i % 2 == 0).discard(); // runs until stopped
//! env.execute()?;
//! # Ok::<(), flow_core::Error>(())
//! ```
mod json;
mod prometheus;
mod rates;

use crate::api::monitor::{JobObserver, LiveJob};
use crate::error::{Error, Result};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

pub use rates::{Backpressure, StageRates, SubtaskRates};

/// Where the dashboard listens.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// The address to bind (default `127.0.0.1`: this machine only).
    pub bind: IpAddr,
    /// The port (default 8081, Flink's).
    pub port: u16,
    /// If the port is taken, take the next free one (up to 100 further) instead of failing.
    pub next_free_port: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8081,
            next_free_port: false,
        }
    }
}

/// One job the dashboard knows, with its latest rates.
pub(crate) struct Entry {
    pub(crate) job: Arc<LiveJob>,
    pub(crate) rates: rates::Sampler,
}

/// The jobs the dashboard shows, shared with the handlers.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) jobs: Mutex<Vec<Entry>>,
}

impl Registry {
    fn with_job<R>(&self, id: &str, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let jobs = self.jobs.lock();
        jobs.iter().find(|e| e.job.id() == id).map(f)
    }

    /// Samples every job's counters: running jobs every time, a finished one once more.
    fn sample(&self) {
        for e in self.jobs.lock().iter_mut() {
            e.rates.sample(&e.job);
        }
    }
}

/// A running web server: dashboard, REST API and `/metrics`. Stops when dropped.
pub struct Dashboard {
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds `opts.bind:opts.port`, or with `next_free_port` the first free port from there.
fn bind(opts: &WebOptions) -> Result<TcpListener> {
    let tries = if opts.next_free_port { 100 } else { 1 };
    let mut last = None;
    for i in 0..tries {
        let Some(port) = opts.port.checked_add(i) else {
            break;
        };
        match TcpListener::bind((opts.bind, port)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((port, e)),
        }
    }
    let (port, e) = last.unwrap_or((
        opts.port,
        std::io::Error::other("no port left to try below 65536"),
    ));
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        if opts.next_free_port {
            format!(" (and the {} ports after it)", tries - 1)
        } else {
            " (another flow job?): pass --web-port N for another port, --web-port-auto to take \
             the next free one, or --web-port 0 to turn the dashboard off"
                .to_string()
        }
    } else {
        String::new()
    };
    Err(Error::Web(format!(
        "cannot serve the dashboard on {}:{}: {e}{hint}",
        opts.bind,
        if opts.next_free_port { opts.port } else { port }
    )))
}

impl Dashboard {
    /// Binds the port and starts serving on a thread of its own. A port in use is an error
    /// naming it (or, with [`WebOptions::next_free_port`], the next free port is taken).
    pub fn start(opts: &WebOptions) -> Result<Self> {
        let listener = bind(opts)?;
        let addr = listener.local_addr().map_err(|e| Error::Spawn {
            what: "web server",
            source: e,
        })?;
        listener.set_nonblocking(true).map_err(|e| Error::Spawn {
            what: "web server",
            source: e,
        })?;
        let registry = Arc::new(Registry::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let reg = registry.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Spawn {
                what: "web server runtime",
                source: e,
            })?;
        let thread = std::thread::Builder::new()
            .name("flow-web".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the dashboard cannot listen: {e}");
                            return;
                        }
                    };
                    let sampler = reg.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tick.tick().await;
                            sampler.sample();
                        }
                    });
                    let app = router(reg);
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("the dashboard stopped: {e}");
                    }
                })
            })
            .map_err(|e| Error::Spawn {
                what: "web server",
                source: e,
            })?;
        Ok(Dashboard {
            addr,
            registry,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl JobObserver for Dashboard {
    fn job_started(&self, job: Arc<LiveJob>) {
        let mut rates = rates::Sampler::default();
        rates.sample(&job);
        self.registry.jobs.lock().push(Entry { job, rates });
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Shared = State<Arc<Registry>>;

fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/overview", get(overview))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/vertices/{vid}", get(vertex))
        .route("/jobs/{id}/checkpoints", get(checkpoints))
        .route("/jobs/{id}/exceptions", get(exceptions))
        .route("/jobs/{id}/stop", post(stop))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(reg)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "errors": [message] }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

fn no_job(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no job with id {id}"))
}

async fn overview(State(reg): Shared) -> Json<serde_json::Value> {
    Json(json::overview(&reg.jobs.lock()))
}

async fn jobs(State(reg): Shared) -> Json<serde_json::Value> {
    Json(json::jobs(&reg.jobs.lock()))
}

async fn jobs_overview(State(reg): Shared) -> Json<serde_json::Value> {
    Json(json::jobs_overview(&reg.jobs.lock()))
}

async fn job(State(reg): Shared, Path(id): Path<String>) -> Response {
    reg.with_job(&id, |e| Json(json::job(e)).into_response())
        .unwrap_or_else(|| no_job(&id))
}

async fn vertex(State(reg): Shared, Path((id, vid)): Path<(String, usize)>) -> Response {
    match reg.with_job(&id, |e| json::vertex(e, vid)) {
        None => no_job(&id),
        Some(None) => error(
            StatusCode::NOT_FOUND,
            &format!("job {id} has no vertex {vid}"),
        ),
        Some(Some(v)) => Json(v).into_response(),
    }
}

async fn checkpoints(State(reg): Shared, Path(id): Path<String>) -> Response {
    reg.with_job(&id, |e| Json(json::checkpoints(&e.job)).into_response())
        .unwrap_or_else(|| no_job(&id))
}

async fn exceptions(State(reg): Shared, Path(id): Path<String>) -> Response {
    reg.with_job(&id, |e| Json(json::exceptions(&e.job)).into_response())
        .unwrap_or_else(|| no_job(&id))
}

async fn stop(State(reg): Shared, Path(id): Path<String>) -> Response {
    let outcome = reg.with_job(&id, |e| {
        if e.job.status() != crate::api::monitor::JobStatus::Running {
            return Err(e.job.status());
        }
        e.job.stop();
        Ok(())
    });
    match outcome {
        None => no_job(&id),
        Some(Err(status)) => error(
            StatusCode::CONFLICT,
            &format!("job {id} is {}, not running", status.as_str()),
        ),
        Some(Ok(())) => {
            tracing::warn!(job = %id, "stop requested through the REST API");
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "status": "STOPPING" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(reg): Shared) -> Response {
    let text = prometheus::render(&reg.jobs.lock());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
