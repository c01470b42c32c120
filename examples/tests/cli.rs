//! The example job binaries, run as a user runs them: flags, outputs, exit codes.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo test` builds the examples next to the test binaries' `deps` directory.
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

/// A job binary's command, with the dashboard off: tests run jobs side by side, and two
/// jobs cannot both serve on the default port.
fn job_command(name: &str) -> Command {
    let mut c = Command::new(example(name));
    c.env("FLOW_WEB_PORT", "0");
    c
}

fn read_parts(dir: &Path) -> Vec<String> {
    flow_core::io::sink::read_part_files(dir).unwrap()
}

#[test]
fn word_count_writes_one_row_per_word_at_any_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let corpus = flow_examples::ZipfWords::new(500, 1.07);
    let bytes = corpus.write_corpus(&input, 300_000).unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    for w in text.split_whitespace() {
        *want.entry(w.to_string()).or_default() += 1;
    }
    let mut want: Vec<String> = want.into_iter().map(|(w, n)| format!("{w},{n}")).collect();
    want.sort();
    for p in ["1", "2", "3"] {
        let out = dir.path().join(format!("out{p}"));
        let r = job_command("word_count")
            .args([
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--parallelism",
                p,
            ])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(read_parts(&out), want, "parallelism {p}");
        let stdout = String::from_utf8_lossy(&r.stdout);
        assert!(
            stdout.contains(&format!("{} distinct words", want.len())),
            "{stdout}"
        );
        assert!(bytes > 0);
    }
}

#[test]
fn word_count_with_no_arguments_prints_the_top_words() {
    let r = job_command("word_count")
        .args(["--generate-mb", "2", "--top", "3"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.starts_with("top 3 of "), "{stdout}");
    assert!(
        stdout.contains("MB/s") && stdout.contains("M words/s"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
}

#[test]
fn bad_input_exits_non_zero_with_a_one_line_error() {
    let r = job_command("word_count")
        .args(["--input", "/no/such/file.txt"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: /no/such/file.txt:"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    std::fs::write(&input, b"fine\nnot \xc3\x28 fine\n").unwrap();
    let r = job_command("word_count")
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    // A failure while the job runs is reported once, without colour codes (stderr is a pipe
    // here): issue 13, bug 4.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: ")
            && errors[0].contains("bad.txt:2: line is not valid UTF-8"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a pipe: {stderr:?}"
    );
}

#[test]
fn help_lists_the_job_flags_and_the_common_flags() {
    let r = job_command("word_count").arg("--help").output().unwrap();
    assert!(r.status.success());
    let help = String::from_utf8_lossy(&r.stdout);
    for flag in [
        "--input",
        "--output",
        "--parallelism",
        "--plan",
        "--max-parallelism",
        "Counts the words",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
    let r = job_command("word_count")
        .arg("--parallelism=0")
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(2),
        "clap rejects a bad flag value with usage exit code 2"
    );
}

#[test]
fn plan_prints_the_graph_without_running() {
    let dir = tempfile::tempdir().unwrap();
    // The plan does not touch the input (issue 13, bug 6): it need not exist.
    let input = dir.path().join("not-there.txt");
    let out = dir.path().join("out");
    let r = job_command("word_count")
        .args([
            "--plan",
            "-p",
            "2",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let plan = String::from_utf8_lossy(&r.stdout);
    assert!(
        plan.contains("stage 0 ==[hash by key, 128 key groups]==> stage 1"),
        "{plan}"
    );
    assert!(plan.contains("(pre-aggregate)"), "{plan}");
    assert!(!out.exists(), "--plan must not run the job");
}

#[test]
fn plan_json_is_the_typed_plan() {
    let r = job_command("window_sum")
        .args(["--plan", "json", "-p", "2"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(plan["parallelism"], 2);
    let stages = plan["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{plan}");
    let kinds: Vec<&str> = stages[1]["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"aggregate_process") || kinds.contains(&"aggregate"),
        "{plan}"
    );
    let edges = plan["edges"].as_array().unwrap();
    assert_eq!(edges[0]["partitioning"]["kind"], "hash", "{plan}");
    assert_eq!(edges[0]["partitioning"]["key_groups"], 128, "{plan}");
}

#[test]
fn long_words_prints_uppercased_words_longer_than_three_characters() {
    let r = job_command("long_words").output().unwrap();
    assert!(r.status.success());
    let words: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        words.contains(&"APACHE".to_string()) && words.contains(&"FLINK".to_string()),
        "{words:?}"
    );
    assert!(
        words
            .iter()
            .all(|w| w.len() > 3 && w.chars().all(|c| !c.is_lowercase())),
        "{words:?}"
    );
}

#[test]
fn socket_word_count_reads_its_built_in_server() {
    let r = job_command("socket_word_count").output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    // rolling updates: "to" is seen 4 times in the built-in text, so its last count is 4
    assert!(stdout.lines().any(|l| l == "to,4"), "{stdout}");
}

#[test]
fn an_unbounded_job_stops_on_ctrl_c_and_flushes_its_sink() {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        writeln!(conn, "stop me stop me").unwrap();
        // keep the connection open: only Ctrl-C can end the job
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    let mut child = job_command("socket_word_count")
        .args(["--address", &address])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap(); // the job is running and has printed an update
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "a job stopped by Ctrl-C exits 0, got {status}"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let all = format!("{first}{rest}");
    assert!(
        all.lines().any(|l| l == "stop,2") && all.lines().any(|l| l == "me,2"),
        "{all}"
    );
    drop(server);
}

#[test]
fn window_sum_writes_one_row_per_key_and_window_and_sends_late_records_aside() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    // Watermarks follow each chunk (64 KiB) a reader takes. Bound 100 ms: after the first
    // chunk, whose largest timestamp is 2500, the watermark is 2399, so k2@1300 in the second
    // chunk is late for its window [1000, 2000). (One reader: with two, the second chunk's
    // reader would not have held the watermark back yet.)
    let mut text = String::from("k1,1000,5\nk2,1100,1\nk1,1900,2\nk1,2500,7\n");
    while text.len() < 70_000 {
        text.push_str("z,2500,1\n");
    }
    let filler = (text.len() - 36) / 9;
    text.push_str("k2,1300,9\nk2,3100,4\n");
    std::fs::write(&input, &text).unwrap();
    let (out, late) = (dir.path().join("out"), dir.path().join("late"));
    let r = job_command("window_sum")
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args([
            "--late-output",
            late.to_str().unwrap(),
            "--parallelism",
            "2",
            "--batch-rows-hint",
        ])
        .output()
        .unwrap();
    // an unknown flag is a usage error (exit code 2) that names the flag
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--batch-rows-hint"));
    let r = job_command("window_sum")
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args([
            "--late-output",
            late.to_str().unwrap(),
            "--parallelism",
            "1",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let z = format!("z,2000,{filler},{filler}");
    assert_eq!(
        read_parts(&out),
        vec![
            "k1,1000,7,2",
            "k1,2000,7,1",
            "k2,1000,1,1",
            "k2,3000,4,1",
            z.as_str()
        ]
    );
    assert_eq!(read_parts(&late), vec!["k2,1300,9"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains(&format!("{} events", filler + 6)) && stdout.contains(", 1 late"),
        "{stdout}"
    );

    // a malformed line names the file and line
    std::fs::write(&input, "k1,1000,5\nk1,soon,2\n").unwrap();
    let r = job_command("window_sum")
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("events.csv:2") && err.contains("soon"),
        "{err}"
    );
}

#[test]
fn window_sum_without_arguments_summarises_a_generated_stream() {
    let r = job_command("window_sum")
        .args(["--events", "50000"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        out.contains("over 50 windows of 1000 ms") && out.contains("50000 events"),
        "{out}"
    );
}

#[test]
fn fraud_detection_alerts_are_the_same_at_every_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tx.csv");
    // account 1: small then large within a minute -> alert; account 2: too late; account 3:
    // small, normal, large -> no alert (the pattern is broken)
    std::fs::write(
        &input,
        "1,1000,0.5\n2,2000,0.3\n3,3000,0.2\n1,30000,900\n3,4000,20\n3,5000,800\n2,70000,1000\n",
    )
    .unwrap();
    for p in ["1", "2", "3"] {
        let out = dir.path().join(format!("alerts{p}"));
        let r = job_command("fraud_detection")
            .args([
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "-p",
                p,
            ])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        // Part files with a header row; read_parts sorts the rows of every part file.
        let mut rows = read_parts(&out);
        rows.retain(|r| r != "account,small_at,small_amount,large_at,large_amount");
        assert_eq!(rows, vec!["1,1000,0.5,30000,900.0"], "parallelism {p}");
    }
    let a = job_command("fraud_detection")
        .args(["--transactions", "200000", "-p", "1"])
        .output()
        .unwrap();
    let b = job_command("fraud_detection")
        .args(["--transactions", "200000", "-p", "2"])
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        a.stdout, b.stdout,
        "generated alerts differ between parallelism 1 and 2"
    );
}

#[test]
fn sensor_averages_reports_windows_and_sessions() {
    let r = job_command("sensor_averages")
        .args(["--events", "100000"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        out.contains("sliding-window averages") && out.contains("device sessions"),
        "{out}"
    );
    assert!(out.contains("100000 readings generated, 0 late"), "{out}");
}
