//! `--plan` describes a job binary without its required arguments and without touching its
//! input (issue 13, bug 6). A test without the libtest harness: run by `cargo test`, it
//! starts itself as a job binary (`FLOW_PLAN_CHILD=1`) and checks what that prints.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::__private::{job_main, JobInfo};
use flow_core::prelude::*;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// A job with two required arguments.
#[derive(Args, Debug)]
struct JobArgs {
    /// Text file to read
    #[arg(long)]
    input: PathBuf,
    /// Keep lines longer than this
    #[arg(long)]
    min_len: usize,
}

fn job(env: &mut Env, args: JobArgs) -> flow_core::Result<()> {
    let min = args.min_len;
    env.read_lines(&args.input)?
        .filter(move |l| l.len() > min)
        .discard();
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os("FLOW_PLAN_CHILD").is_some() {
        return job_main(
            JobInfo {
                name: "planned",
                about: "",
            },
            job,
        );
    }
    let me = std::env::current_exe().unwrap();
    let run = |args: &[&str]| {
        Command::new(&me)
            .env("FLOW_PLAN_CHILD", "1")
            .env("FLOW_WEB_PORT", "0")
            .args(args)
            .output()
            .unwrap()
    };
    // Without the required arguments: the plan, exit 0.
    let r = run(&["--plan", "-p", "2"]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.starts_with("job `planned`: 1 stage(s)"), "{out}");
    assert!(out.contains("-> filter ("), "{out}");
    // As JSON too.
    let r = run(&["--plan", "json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("\"kind\": \"filter\""));
    // Without --plan they are still required.
    let r = run(&["-p", "2"]);
    assert_eq!(r.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&r.stderr).contains("--input <INPUT>"));
    println!("plan_cli: ok");
    ExitCode::SUCCESS
}
