//! The dashboard of real job processes: its REST API and Prometheus text read with a real
//! HTTP client and parser, the page driven in headless Chromium through WebDriver, and two
//! jobs asking for one port.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo test` from the workspace root",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A job process, killed if the test fails before it ends.
struct Job {
    child: Option<Child>,
    base: String,
}

impl Job {
    fn start(name: &str, port: u16, args: &[&str]) -> Job {
        let child = Command::new(example(name))
            .args(args)
            .args(["--web-port", &port.to_string(), "--no-progress"])
            .env_remove("FLOW_WEB_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Job {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The job's id, once the dashboard lists it.
    fn wait_for_job(&self) -> String {
        let jobs = wait_until(
            Duration::from_secs(60),
            "the dashboard lists the job",
            || {
                let v = get(&format!("{}/jobs", self.base)).ok()?;
                let jobs = v["jobs"].as_array()?.clone();
                (!jobs.is_empty()).then_some(jobs)
            },
        );
        jobs[0]["id"].as_str().unwrap().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for the process to exit; returns its status and stderr.
    fn wait(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status, err);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                panic!("the job did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn interrupt(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(url: &str) -> Result<Value, String> {
    let body = ureq::get(url)
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
}

fn status_of(url: &str, post: bool) -> u16 {
    let r = if post {
        ureq::post(url).call()
    } else {
        ureq::get(url).call()
    };
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Scrapes `/metrics`, checks the text's structure (HELP and TYPE once per family, before
/// its samples) and parses it with the `prometheus-parse` crate.
fn scrape(job: &Job) -> prometheus_parse::Scrape {
    let text = ureq::get(&job.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_string()), "TYPE of {name} twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
        }
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn sample_values(scrape: &prometheus_parse::Scrape, metric: &str) -> Vec<(String, String, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                ref other => panic!("{metric}: unexpected {other:?}"),
            };
            (
                s.labels.get("stage").unwrap_or("").to_string(),
                s.labels.get("subtask").unwrap_or("").to_string(),
                v,
            )
        })
        .collect()
}

fn sensor_job(port: u16, dir: &Path, extra: &[&str]) -> Job {
    let out = dir.join("averages");
    let sessions = dir.join("sessions");
    let mut args = vec![
        "--events",
        "0",
        "--rate",
        "20000",
        "--parallelism",
        "2",
        "--output",
        out.to_str().unwrap(),
        "--sessions-output",
        sessions.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Job::start("sensor_averages", port, &args)
}

#[test]
fn rest_api_and_prometheus_of_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let savepoints = dir.path().join("savepoints");
    let port = free_port();
    let job = sensor_job(
        port,
        dir.path(),
        &[
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--checkpoint-interval",
            "200ms",
            "--savepoint-dir",
            savepoints.to_str().unwrap(),
        ],
    );
    let id = job.wait_for_job();
    assert_eq!(id.len(), 32, "{id}");

    // Every stage gets records, and the sampler has rates for them.
    let detail = wait_until(Duration::from_secs(60), "every stage has a rate", || {
        let v = get(&job.url(&format!("/jobs/{id}"))).ok()?;
        let all = v["vertices"].as_array()?.iter().all(|s| {
            s["rates"]["records-in-per-second"].as_f64().unwrap_or(0.0) > 0.0
                && s["metrics"]["read-records"].as_u64().unwrap_or(0) > 0
        });
        all.then_some(v)
    });
    assert_eq!(detail["state"], "RUNNING");
    assert_eq!(detail["name"], "sensor_averages");
    let vertices = detail["vertices"].as_array().unwrap();
    assert_eq!(vertices.len(), 4, "{detail}");
    assert_eq!(detail["plan"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(detail["edges"][0]["partitioning"]["kind"], "hash");
    assert_eq!(vertices[0]["source"], true);
    assert_eq!(vertices[1]["source"], false);
    assert_eq!(vertices[1]["operators"][0]["kind"], "aggregate");
    for v in vertices {
        assert!(
            ["OK", "LOW", "HIGH"].contains(&v["backpressure"].as_str().unwrap()),
            "{v}"
        );
    }
    // The window stages hold keyed state (50 sensors' windows and sessions).
    for v in [&vertices[1], &vertices[3]] {
        assert!(v["metrics"]["state-entries"].as_u64().unwrap() > 0, "{v}");
    }
    // Watermarks pass the keyed stages.
    assert!(
        vertices[1]["metrics"]["watermark-in"].is_i64(),
        "{}",
        vertices[1]
    );
    assert_eq!(detail["progress"]["bounded"], false);

    let overview = get(&job.url("/overview")).unwrap();
    assert_eq!(overview["jobs-running"], 1);
    assert_eq!(overview["jobs-finished"], 0);
    let listed = get(&job.url("/jobs/overview")).unwrap();
    assert_eq!(listed["jobs"][0]["jid"], id.as_str());

    let vertex = get(&job.url(&format!("/jobs/{id}/vertices/1"))).unwrap();
    let subtasks = vertex["subtasks"].as_array().unwrap();
    assert_eq!(subtasks.len(), 2);
    let per_subtask: u64 = subtasks
        .iter()
        .map(|s| s["metrics"]["read-records"].as_u64().unwrap())
        .sum();
    assert!(per_subtask > 0);
    assert_eq!(
        status_of(&job.url(&format!("/jobs/{id}/vertices/9")), false),
        404
    );
    assert_eq!(status_of(&job.url("/jobs/0123456789abcdef"), false), 404);
    assert_eq!(status_of(&job.url("/no/such/page"), false), 404);

    let cps = wait_until(Duration::from_secs(60), "a checkpoint completes", || {
        let v = get(&job.url(&format!("/jobs/{id}/checkpoints"))).ok()?;
        (v["counts"]["completed"].as_u64()? >= 2).then_some(v)
    });
    let latest = &cps["latest"]["completed"];
    assert_eq!(latest["status"], "COMPLETED");
    assert!(
        latest["end_to_end_duration"].as_f64().unwrap() > 0.0,
        "{cps}"
    );
    assert!(latest["id"].as_u64().unwrap() >= 2);
    // Incremental: what a checkpoint wrote is at most its whole size.
    let written = latest["checkpointed_size"].as_u64().unwrap();
    let full = latest["state_size"].as_u64().unwrap();
    assert!(written > 0 && written <= full, "{latest}");
    assert_eq!(cps["interval_ms"], 200.0);
    let exceptions = get(&job.url(&format!("/jobs/{id}/exceptions"))).unwrap();
    assert!(exceptions["root-exception"].is_null(), "{exceptions}");

    // Prometheus: every stage and subtask, with the labels and types it promises.
    let scrape = scrape(&job);
    assert_eq!(
        scrape.docs.get("flow_records_in_total").map(String::as_str),
        Some("Records that entered the subtask's fused chain.")
    );
    let records_in = sample_values(&scrape, "flow_records_in_total");
    for stage in ["0", "1", "2", "3"] {
        for subtask in ["0", "1"] {
            assert!(
                records_in
                    .iter()
                    .any(|(st, su, v)| st == stage && su == subtask && *v > 0.0),
                "no records in for stage {stage} subtask {subtask}: {records_in:?}"
            );
        }
    }
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == "flow_records_in_total")
        .unwrap();
    assert!(matches!(sample.value, prometheus_parse::Value::Counter(_)));
    assert_eq!(sample.labels.get("job"), Some("sensor_averages"));
    assert_eq!(sample.labels.get("job_id"), Some(id.as_str()));
    assert!(sample.labels.get("operator").is_some());
    let busy = sample_values(&scrape, "flow_busy_seconds_total");
    assert!(busy.iter().any(|(_, _, v)| *v > 0.0), "{busy:?}");
    let running = sample_values(&scrape, "flow_job_running");
    assert_eq!(running[0].2, 1.0);
    assert!(sample_values(&scrape, "flow_checkpoints_completed_total")[0].2 >= 2.0);
    assert!(!sample_values(&scrape, "flow_watermark_out_milliseconds").is_empty());
    let entries = sample_values(&scrape, "flow_state_entries");
    assert!(
        entries.iter().any(|(st, _, v)| st == "1" && *v > 0.0),
        "{entries:?}"
    );

    // A clean stop through the API: the job drains and exits 0.
    assert_eq!(status_of(&job.url(&format!("/jobs/{id}/stop")), true), 202);
    let (status, stderr) = job.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("stop requested through the REST API"),
        "{stderr}"
    );
    let rows = flow_core::io::sink::read_part_files(&dir.path().join("averages")).unwrap();
    assert!(!rows.is_empty());
    // The stop wrote a savepoint, as Ctrl-C does.
    let saved: Vec<_> = std::fs::read_dir(&savepoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        saved.iter().any(|n| n.starts_with("savepoint-")),
        "{saved:?}; {stderr}"
    );
}

#[test]
fn a_finished_bounded_job_lingers_with_its_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let corpus = flow_examples::ZipfWords::new(500, 1.07);
    let bytes = corpus.write_corpus(&input, 200_000).unwrap();
    let port = free_port();
    let out = dir.path().join("out");
    let job = Job::start(
        "word_count",
        port,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--parallelism",
            "2",
            "--linger",
        ],
    );
    let id = job.wait_for_job();
    let detail = wait_until(Duration::from_secs(120), "the job finishes", || {
        let v = get(&job.url(&format!("/jobs/{id}"))).ok()?;
        (v["state"] == "FINISHED").then_some(v)
    });
    let rows = flow_core::io::sink::read_part_files(&out).unwrap();
    let progress = &detail["progress"];
    assert_eq!(progress["bounded"], true, "{detail}");
    assert_eq!(progress["unit"], "bytes");
    assert_eq!(progress["total"].as_u64(), Some(bytes));
    assert_eq!(progress["fraction"], 1.0);
    assert!(detail["end-time"].as_i64().unwrap() >= detail["start-time"].as_i64().unwrap());
    let vertices = detail["vertices"].as_array().unwrap();
    assert!(
        vertices.iter().all(|v| v["status"] == "FINISHED"),
        "{detail}"
    );
    let sink = vertices.last().unwrap();
    assert_eq!(
        sink["metrics"]["write-records"].as_u64(),
        Some(rows.len() as u64),
        "the sink stage wrote one row per word"
    );
    assert!(sink["metrics"]["write-bytes"].as_u64().unwrap() > 0);
    assert_eq!(vertices[0]["metrics"]["read-bytes"].as_u64(), Some(bytes));

    let scrape = scrape(&job);
    assert_eq!(sample_values(&scrape, "flow_job_running")[0].2, 0.0);
    let read: f64 = sample_values(&scrape, "flow_bytes_read_total")
        .iter()
        .map(|s| s.2)
        .sum();
    assert_eq!(read, bytes as f64);
    let overview = get(&job.url("/overview")).unwrap();
    assert_eq!(overview["jobs-finished"], 1);
    assert_eq!(status_of(&job.url(&format!("/jobs/{id}/stop")), true), 409);

    // Still serving a while later; Ctrl-C ends the linger with success.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        get(&job.url(&format!("/jobs/{id}"))).unwrap()["state"],
        "FINISHED"
    );
    job.interrupt();
    let (status, stderr) = job.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("dashboard stays at"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let port = free_port();
    let r = Command::new(example("sensor_averages"))
        .args(["--events", "20000", "--log-format", "json"])
        .args(["--web-port", &port.to_string()])
        .env_remove("FLOW_WEB_PORT")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let events: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` event in {stderr}"))
    };
    let listening = find("dashboard listening");
    assert_eq!(
        listening["fields"]["url"],
        format!("http://127.0.0.1:{port}/").as_str()
    );
    let finished = find("job finished");
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["fields"]["ok"], true);
    assert_eq!(
        finished["fields"]["records_read"], 40_000,
        "two sources of 20,000"
    );
}

#[test]
fn a_failed_job_shows_its_exception() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("k{},{},{}\n", i % 7, i * 10, i));
    }
    text.push_str("k1,not-a-time,5\n");
    std::fs::write(&input, text).unwrap();
    let port = free_port();
    let job = Job::start(
        "window_sum",
        port,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("out").to_str().unwrap(),
            "--parallelism",
            "1",
            "--linger",
            "60s",
        ],
    );
    let id = job.wait_for_job();
    let exceptions = wait_until(Duration::from_secs(60), "the job fails", || {
        let v = get(&job.url(&format!("/jobs/{id}/exceptions"))).ok()?;
        (!v["root-exception"].is_null()).then_some(v)
    });
    let root = exceptions["root-exception"].as_str().unwrap();
    assert!(root.contains("events.csv:1001"), "{exceptions}");
    assert!(exceptions["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(exceptions["exceptionHistory"]["entries"][0]["fatal"], true);
    let detail = get(&job.url(&format!("/jobs/{id}"))).unwrap();
    assert_eq!(detail["state"], "FAILED");
    assert_eq!(get(&job.url("/overview")).unwrap()["jobs-failed"], 1);
    job.interrupt();
    let (status, stderr) = job.wait(Duration::from_secs(30));
    assert!(
        !status.success(),
        "a failed job exits non-zero after lingering"
    );
    assert!(
        stderr.lines().last().unwrap().starts_with("error: "),
        "{stderr}"
    );
}

#[test]
fn a_second_job_on_a_taken_port_fails_clearly_or_takes_the_next_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first = sensor_job(port, &dir.path().join("a"), &[]);
    first.wait_for_job();

    let second = Job::start("sensor_averages", port, &["--events", "1000"]);
    let (status, stderr) = second.wait(Duration::from_secs(60));
    assert!(!status.success(), "{stderr}");
    let line = stderr.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: cannot serve the dashboard on 127.0.0.1:{port}"
        )) && line.contains("--web-port-auto")
            && line.contains("--web-port 0"),
        "{stderr}"
    );

    let third = Command::new(example("sensor_averages"))
        .args(["--events", "1000", "--no-progress", "--web-port-auto"])
        .args(["--web-port", &port.to_string()])
        .env_remove("FLOW_WEB_PORT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    let url = stderr
        .lines()
        .find_map(|l| l.strip_prefix("flow: dashboard at http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let taken: u16 = url.trim_end_matches('/').parse().unwrap();
    assert!(taken > port, "{stderr}");

    first.interrupt();
    let (status, stderr) = first.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
}

/// Where chromedriver is: `CHROMEDRIVER`, else Debian's.
fn chromedriver() -> PathBuf {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "THE DASHBOARD'S BROWSER TEST CANNOT RUN: {} does not exist. Install Debian's \
         `chromium` and `chromium-driver` (`.ci/run` does), or set CHROMEDRIVER",
        path.display()
    );
    path
}

#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_shows_every_stage_live_in_headless_chromium() {
    let driver_path = chromedriver();
    let driver_port = free_port();
    // chromedriver and the browser it starts in a process group of their own, killed as a
    // whole however the test ends (a failed assertion leaves no browser behind).
    let mut driver = std::os::unix::process::CommandExt::process_group(
        Command::new(&driver_path)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        0,
    )
    .spawn()
    .unwrap();
    struct KillOnDrop<'a>(&'a mut Child);
    impl Drop for KillOnDrop<'_> {
        fn drop(&mut self) {
            let group = format!("-{}", self.0.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.0.wait();
        }
    }
    let _driver = KillOnDrop(&mut driver);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let job = sensor_job(port, dir.path(), &[]);
    job.wait_for_job();

    let mut caps = serde_json::Map::new();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let webdriver = format!("http://127.0.0.1:{driver_port}");
    let start = Instant::now();
    let client = loop {
        match fantoccini::ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
        }
    };
    client.goto(&job.url("/")).await.unwrap();

    // Live data: every stage of the plan drawn, each with a non-zero throughput.
    let start = Instant::now();
    let rates = loop {
        // Read in one script, so that a redraw between finding the nodes and reading them
        // (which replaces the nodes: a stale element reference) cannot come in between.
        let read = client
            .execute(
                "return Array.from(document.querySelectorAll('.stage-node'))\
                   .map(n => n.getAttribute('data-rate'));",
                vec![],
            )
            .await
            .unwrap();
        let rates: Vec<f64> = read
            .as_array()
            .expect("the script returns an array")
            .iter()
            .map(|r| r.as_str().and_then(|r| r.parse().ok()).unwrap_or(0.0))
            .collect();
        if rates.len() == 4 && rates.iter().all(|&r| r > 0.0) {
            break rates;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the dashboard never showed every stage with throughput: {rates:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(rates.len(), 4);
    let status = client
        .find(fantoccini::Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "RUNNING");
    let rows = client
        .find_all(fantoccini::Locator::Css("#stages tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    let edges = client
        .find_all(fantoccini::Locator::Css("path.edge"))
        .await
        .unwrap();
    assert_eq!(edges.len(), 2, "the two exchanges are drawn");
    // A stage's subtasks, by clicking its row (found and clicked in one script: the table
    // is redrawn as the figures change).
    client
        .execute(
            "document.querySelectorAll('#stages tbody tr')[1].click();",
            vec![],
        )
        .await
        .unwrap();
    client
        .wait()
        .for_element(fantoccini::Locator::Css("#subtasks table"))
        .await
        .unwrap();

    let png = client.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("dashboard screenshot: {}", shot.display());

    // The stop button stops the job (after its confirmation).
    client
        .find(fantoccini::Locator::Id("stop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.accept_alert().await.unwrap();
    let (status, stderr) = job.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    client.close().await.unwrap();
}
