//! Crash and recovery with real processes: runs a job binary with checkpoints, kills it with
//! SIGKILL at random moments, restores it with `--restore` (also at another parallelism),
//! until a run ends on its own, and checks what a reader of its output directory sees.
//!
//! After every kill and every run, the visible output ([`read_part_files`]) must hold no row
//! twice, no row outside the failure-free output, and every row it held before (published
//! output is never taken back). At the end it must equal the failure-free output.
//!
//! Used by `examples/tests/crash.rs` (a CI-sized run) and `examples/crash_soak.rs` (a soak of
//! any number of kills). Every failure names the seed that reproduces it.
use flow_core::io::sink::read_part_files;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: a small seeded generator for kill times and parallelism.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value; 0 is mapped to a non-zero state).
    pub fn new(seed: u64) -> Self {
        XorShift(crate::SplitMix(seed).next_u64() | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform duration in `[lo, hi)`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + hi.saturating_sub(lo).mul_f64(self.unit())
    }
}

/// A seed from the environment variable `var` (decimal or `0x` hex), else from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    if let Ok(s) = std::env::var(var) {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        if let Ok(v) = parsed {
            return v;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}

/// A job binary and the arguments of one job (input, options), without the flags the
/// harness sets: `--output`, `--parallelism` and the checkpoint flags.
#[derive(Clone, Debug)]
pub struct Job {
    /// A short name for reports, e.g. `word_count`.
    pub name: String,
    /// The job binary.
    pub exe: PathBuf,
    /// The job's own arguments.
    pub args: Vec<OsString>,
}

impl Job {
    /// The job binary `name` built next to the running executable: a test binary in
    /// `target/PROFILE/deps` finds it in `target/PROFILE/examples`, an example binary in its
    /// own directory.
    pub fn example(name: &str, args: &[&std::ffi::OsStr]) -> Result<Job, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut dirs = Vec::new();
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
            if let Some(p) = d.parent() {
                dirs.push(p.join("examples"));
            }
        }
        let path = dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "example binary `{name}` not found in {}: build the examples first \
                     (`cargo build --examples`, with --release for a release run)",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            })?;
        Ok(Job {
            name: name.to_string(),
            exe: path,
            args: args.iter().map(|a| a.to_os_string()).collect(),
        })
    }

    fn command(&self, output: &Path, parallelism: u32) -> Command {
        let mut c = Command::new(&self.exe);
        // Kill tests run jobs side by side: no dashboard, so no contested port.
        c.env("FLOW_WEB_PORT", "0");
        c.args(&self.args)
            .arg("--output")
            .arg(output)
            .arg("--parallelism")
            .arg(parallelism.to_string())
            .arg("--no-progress")
            .stdin(Stdio::null());
        c
    }

    /// Runs the job once without checkpoints or failures; returns its output rows (sorted)
    /// and how long it took.
    pub fn failure_free(&self, output: &Path, parallelism: u32) -> Result<Expected, String> {
        let start = Instant::now();
        let r = self
            .command(output, parallelism)
            .output()
            .map_err(|e| format!("{}: cannot start: {e}", self.exe.display()))?;
        let took = start.elapsed();
        if !r.status.success() {
            return Err(format!(
                "{} failure-free run at parallelism {parallelism} failed ({}):\n{}",
                self.name,
                r.status,
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        let rows = read_part_files(output).map_err(|e| e.to_string())?;
        if rows.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!(
                "{}: the failure-free output holds duplicate rows",
                self.name
            ));
        }
        Ok(Expected { rows, took })
    }
}

/// The failure-free output of a job.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Its rows, sorted.
    pub rows: Vec<String>,
    /// How long the failure-free run took: the time scale of the kill times.
    pub took: Duration,
}

/// How a trial runs the job.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Kills to land before the job may finish (a kill that comes after the run ended on its
    /// own does not count, and ends the trial early).
    pub kills: usize,
    /// The parallelism of attempt `i` is `parallelism[i]`, the last one for later attempts.
    pub parallelism: Vec<u32>,
    /// `--checkpoint-interval`.
    pub interval: String,
    /// `--checkpoints-retained`.
    pub retained: u32,
    /// The kills, in order (the last one repeats); empty: each is drawn by [`Kill::draw`].
    pub schedule: Vec<Kill>,
    /// The first kill comes before this much time, before the first checkpoint can complete
    /// (after that, kills follow `schedule` or [`Kill::draw`]).
    pub first_kill_before: Option<Duration>,
    /// Also restore the finished job (killing that run once at a random moment, then once
    /// unkilled): its output must not change.
    pub restore_after_end: bool,
}

/// What happened in one process run.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Parallelism of the run.
    pub parallelism: u32,
    /// Whether it ran with `--restore`.
    pub restore: bool,
    /// The kill asked for, if any.
    pub kill: Option<Kill>,
    /// How the run ended: `killed`, `exit 0`, ...
    pub outcome: String,
    /// The checkpoint it restored, if it said so.
    pub restored: Option<u64>,
    /// Whether it said it found no checkpoint and started from the beginning.
    pub fresh: bool,
    /// Rows visible after the run.
    pub visible: usize,
    /// How long it ran.
    pub ran: Duration,
}

/// Counts over trials.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Runs ended by SIGKILL.
    pub kills: u64,
    /// Runs started with `--restore`.
    pub restores: u64,
    /// Restores that resumed a checkpoint.
    pub from_checkpoint: u64,
    /// Restores that found no checkpoint and started over.
    pub fresh_starts: u64,
    /// Restores at another parallelism than the run before.
    pub rescales: u64,
    /// Restores of a checkpoint written at another parallelism: keyed state and source
    /// positions redistributed.
    pub rescaled_state: u64,
    /// Kills after which some but not all of the final rows were visible.
    pub partial_visible: u64,
    /// Kills of a run that restored the finished job.
    pub kills_after_end: u64,
    /// Trials that ended with the right output.
    pub trials_ok: u64,
    /// Trials that failed.
    pub failures: u64,
}

impl Stats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &Stats) {
        self.kills += o.kills;
        self.restores += o.restores;
        self.from_checkpoint += o.from_checkpoint;
        self.fresh_starts += o.fresh_starts;
        self.rescales += o.rescales;
        self.rescaled_state += o.rescaled_state;
        self.partial_visible += o.partial_visible;
        self.kills_after_end += o.kills_after_end;
        self.trials_ok += o.trials_ok;
        self.failures += o.failures;
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kills, {} restores ({} from a checkpoint, {} from the beginning, {} at another parallelism, {} of state \
             written at another parallelism), \
             {} kills with partial output visible, {} after the end, {} trials ok, {} failed",
            self.kills,
            self.restores,
            self.from_checkpoint,
            self.fresh_starts,
            self.rescales,
            self.rescaled_state,
            self.partial_visible,
            self.kills_after_end,
            self.trials_ok,
            self.failures
        )
    }
}

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
pub enum Kill {
    /// This long after the start.
    At(Duration),
    /// As soon as the `nth` (from 1) new file of this kind is seen in the checkpoint or
    /// output directory (polled every 0.2-1 ms).
    On(Watch, u32),
}

/// Files whose appearance a kill waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// A new segment (or any `.tmp` file) in the checkpoint directory: a checkpoint is being
    /// written, its manifest not yet committed.
    CheckpointWrite,
    /// A new manifest: a checkpoint just became durable, its output is about to be published.
    Manifest,
    /// A new pending (pre-committed) file in the output directory: the sink's pre-commit at a
    /// barrier, its checkpoint not yet durable.
    Pending,
    /// A new visible part file: a publish is under way (more renames may follow).
    Published,
}

impl Watch {
    fn matches(self, name: &str) -> bool {
        match self {
            Watch::CheckpointWrite => name.starts_with("segment-") || name.ends_with(".tmp"),
            Watch::Manifest => name.starts_with("checkpoint-") && name.ends_with(".manifest"),
            Watch::Pending => name.ends_with(".pending"),
            Watch::Published => !name.starts_with('.') && !name.starts_with('_'),
        }
    }

    fn in_output(self) -> bool {
        matches!(self, Watch::Pending | Watch::Published)
    }
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::At(d) => write!(f, "at {:.3} s", d.as_secs_f64()),
            Kill::On(w, n) => {
                let what = match w {
                    Watch::CheckpointWrite => "checkpoint file written",
                    Watch::Manifest => "manifest committed",
                    Watch::Pending => "pending part file",
                    Watch::Published => "part file published",
                };
                write!(f, "on {what} #{n}")
            }
        }
    }
}

impl Kill {
    /// A kill for a run whose failure-free run took `d`: some before the first checkpoint
    /// can complete, many at any time of the run, some around its end (the final checkpoint
    /// and the publish of all output), and some the moment a checkpoint is being written, has
    /// just committed, a sink has pre-committed, or a publish has begun.
    pub fn draw(rng: &mut XorShift, d: Duration) -> Kill {
        let nth = 1 + rng.below(3) as u32;
        match rng.below(20) {
            0..=1 => Kill::At(rng.between(Duration::ZERO, Duration::from_millis(80))),
            2..=9 => Kill::At(rng.between(Duration::ZERO, d)),
            10..=11 => Kill::At(rng.between(d.mul_f64(0.7), d.mul_f64(1.3))),
            12..=13 => Kill::On(Watch::CheckpointWrite, nth),
            14..=15 => Kill::On(Watch::Manifest, nth),
            16..=17 => Kill::On(Watch::Pending, nth),
            _ => Kill::On(Watch::Published, 1),
        }
    }
}

/// One trial: a fresh output and checkpoint directory, kills and restores until a run ends
/// on its own, and the checks.
pub struct Trial<'a> {
    /// The job.
    pub job: &'a Job,
    /// Its failure-free output.
    pub expected: &'a Expected,
    /// A directory of its own for the output, checkpoints and logs (emptied first).
    pub dir: PathBuf,
    /// The seed of the whole run, named in failures.
    pub seed: u64,
    /// Which trial of the run this is, named in failures.
    pub index: u64,
    /// Print every run of the trial to stderr.
    pub verbose: bool,
}

struct RunState {
    attempts: Vec<Attempt>,
    /// The rows visible after the last run, sorted.
    visible: Vec<String>,
    stats: Stats,
}

impl Trial<'_> {
    /// Runs the trial; `Err` describes the failure with everything needed to reproduce it.
    pub fn run(&self, rng: &mut XorShift, plan: &Plan) -> Result<Stats, String> {
        let mut st = RunState {
            attempts: Vec::new(),
            visible: Vec::new(),
            stats: Stats::default(),
        };
        match self.run_inner(rng, plan, &mut st) {
            Ok(()) => {
                st.stats.trials_ok += 1;
                if self.verbose {
                    eprintln!(
                        "{} trial {} (the failure-free run took {:.3} s):\n{}",
                        self.job.name,
                        self.index,
                        self.expected.took.as_secs_f64(),
                        history(&st.attempts)
                    );
                }
                Ok(st.stats)
            }
            Err(e) => Err(self.report(plan, &st, &e)),
        }
    }

    fn output(&self) -> PathBuf {
        self.dir.join("out")
    }

    fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    fn run_inner(&self, rng: &mut XorShift, plan: &Plan, st: &mut RunState) -> Result<(), String> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .map_err(|e| format!("cannot empty {}: {e}", self.dir.display()))?;
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let d = self.expected.took;
        let mut kills = 0usize;
        loop {
            let i = st.attempts.len();
            let parallelism = plan
                .parallelism
                .get(i)
                .or(plan.parallelism.last())
                .copied()
                .unwrap_or(2);
            let kill = (kills < plan.kills).then(|| {
                let scheduled = plan.schedule.get(kills).or(plan.schedule.last());
                match (i, plan.first_kill_before, scheduled) {
                    (0, Some(before), _) => Kill::At(rng.between(Duration::ZERO, before)),
                    (_, _, Some(k)) => *k,
                    _ => Kill::draw(rng, d),
                }
            });
            let killed = self.attempt(st, plan, parallelism, i > 0, kill)?;
            if killed {
                kills += 1;
            } else {
                break;
            }
        }
        self.check_final(st, "after the run that ended on its own")?;
        if plan.restore_after_end {
            let p = st.attempts.last().map_or(2, |a| a.parallelism);
            // Restoring a finished job takes milliseconds (a few in a release build).
            let within = (d / 30).clamp(Duration::from_millis(4), Duration::from_millis(60));
            let kill = Kill::At(rng.between(Duration::from_millis(1), within));
            if self.attempt(st, plan, p, true, Some(kill))? {
                st.stats.kills_after_end += 1;
                self.check_final(st, "after a kill while restoring the finished job")?;
            }
            if self.attempt(st, plan, p, true, None)? {
                return Err("a run without a kill ended by SIGKILL".into());
            }
            self.check_final(st, "after restoring the finished job")?;
        }
        Ok(())
    }

    /// Runs the job once, killing it as `kill` says if it still runs; checks the visible
    /// output. Returns whether the kill landed.
    fn attempt(
        &self,
        st: &mut RunState,
        plan: &Plan,
        parallelism: u32,
        restore: bool,
        kill: Option<Kill>,
    ) -> Result<bool, String> {
        let n = st.attempts.len();
        let log = self.dir.join(format!("attempt-{n:03}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = self.job.command(&self.output(), parallelism);
        cmd.arg("--checkpoint-dir")
            .arg(self.checkpoints())
            .arg("--checkpoint-interval")
            .arg(&plan.interval)
            .arg("--checkpoints-retained")
            .arg(plan.retained.to_string())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if restore {
            cmd.arg("--restore");
        }
        if restore {
            st.stats.restores += 1;
            if let Some(prev) = st.attempts.last() {
                if prev.parallelism != parallelism {
                    st.stats.rescales += 1;
                }
            }
        }
        let start = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.job.exe.display()))?;
        let (status, killed) = self.supervise(child, start, kill)?;
        let ran = start.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let restored = text.lines().find_map(|l| {
            l.strip_prefix("restoring checkpoint ")
                .and_then(|r| r.split(' ').next())
                .and_then(|id| id.parse().ok())
        });
        let fresh = text.contains("no complete checkpoint");
        if let (Some(c), Some(prev)) = (restored, st.attempts.last()) {
            // The checkpoint restored is the previous run's if it is newer than the one that
            // run started from (when known).
            let base = if !prev.restore || prev.fresh {
                Some(0)
            } else {
                prev.restored
            };
            if base.is_some_and(|b| c > b) && prev.parallelism != parallelism {
                st.stats.rescaled_state += 1;
            }
        }
        if restore {
            if restored.is_some() {
                st.stats.from_checkpoint += 1;
            }
            if fresh {
                st.stats.fresh_starts += 1;
            }
        }
        let outcome = if killed {
            "killed".to_string()
        } else {
            status.to_string()
        };
        st.attempts.push(Attempt {
            parallelism,
            restore,
            kill,
            outcome,
            restored,
            fresh,
            visible: 0,
            ran,
        });
        if killed {
            st.stats.kills += 1;
        } else if !status.success() {
            return Err(format!(
                "attempt {n} exited with {status} (not killed); its output:\n{}",
                tail(&text, 40)
            ));
        }
        self.check_visible(st)?;
        if killed && !st.visible.is_empty() && st.visible.len() < self.expected.rows.len() {
            st.stats.partial_visible += 1;
        }
        Ok(killed)
    }

    /// Waits for the child, killing it as `kill` says; a run that takes far longer than the
    /// failure-free one is a hang. Returns its status and whether the kill ended it.
    fn supervise(
        &self,
        mut child: Child,
        start: Instant,
        kill: Option<Kill>,
    ) -> Result<(ExitStatus, bool), String> {
        let hang = (self.expected.took * 20).max(Duration::from_secs(30));
        // For a kill on files: the names present at the start, and how many new ones came.
        let watched = match kill {
            Some(Kill::On(w, _)) if w.in_output() => Some((w, self.output())),
            Some(Kill::On(w, _)) => Some((w, self.checkpoints())),
            _ => None,
        };
        let mut known: BTreeSet<OsString> = match &watched {
            Some((_, dir)) => names(dir),
            None => BTreeSet::new(),
        };
        let mut seen = 0u32;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok((status, false)),
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the job: {e}")),
            }
            let now = start.elapsed();
            let fire = match (kill, &watched) {
                (Some(Kill::At(at)), _) => now >= at,
                (Some(Kill::On(_, nth)), Some((w, dir))) => {
                    for n in names(dir) {
                        if w.matches(&n.to_string_lossy()) && !known.contains(&n) {
                            seen += 1;
                        }
                        known.insert(n);
                    }
                    seen >= nth
                }
                _ => false,
            };
            if fire {
                let _ = child.kill(); // SIGKILL; fails only if it has already exited
                let status = child
                    .wait()
                    .map_err(|e| format!("waiting for the job: {e}"))?;
                return Ok((status, was_killed(&status)));
            }
            if now >= hang {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "hang: the run took over {:.1} s (the failure-free run {:.2} s)",
                    hang.as_secs_f64(),
                    self.expected.took.as_secs_f64()
                ));
            }
            let next = match kill {
                Some(Kill::At(at)) => at.saturating_sub(now).min(Duration::from_millis(5)),
                Some(Kill::On(..)) => Duration::from_millis(1),
                None => Duration::from_millis(5),
            };
            std::thread::sleep(next.max(Duration::from_micros(200)));
        }
    }

    /// The visible output now: no duplicates, nothing outside the expected output, nothing
    /// that was visible before has gone.
    fn check_visible(&self, st: &mut RunState) -> Result<(), String> {
        let out = self.output();
        let rows = if out.exists() {
            read_part_files(&out).map_err(|e| format!("reading the output: {e}"))?
        } else {
            Vec::new()
        };
        let mut problems = String::new();
        let dups: Vec<&String> = rows
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| &w[0])
            .collect();
        if !dups.is_empty() {
            let _ = writeln!(
                problems,
                "{} duplicated rows visible, e.g. {:?}",
                dups.len(),
                &dups[..dups.len().min(5)]
            );
        }
        let alien = not_in(&rows, &self.expected.rows);
        if !alien.is_empty() {
            let _ = writeln!(
                problems,
                "{} visible rows are not in the failure-free output, e.g. {:?}",
                alien.len(),
                &alien[..alien.len().min(5)]
            );
        }
        let gone = not_in(&st.visible, &rows);
        if !gone.is_empty() {
            let _ = writeln!(
                problems,
                "{} rows visible before are gone, e.g. {:?}",
                gone.len(),
                &gone[..gone.len().min(5)]
            );
        }
        if let Some(a) = st.attempts.last_mut() {
            a.visible = rows.len();
        }
        st.visible = rows;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "visible output after attempt {}:\n{problems}files: {}",
                st.attempts.len().saturating_sub(1),
                list_dir(&out)
            ))
        }
    }

    fn check_final(&self, st: &RunState, when: &str) -> Result<(), String> {
        if st.visible == self.expected.rows {
            return Ok(());
        }
        let missing = not_in(&self.expected.rows, &st.visible);
        Err(format!(
            "final output {when} differs from the failure-free output: {} rows, want {}; \
             {} missing, e.g. {:?}; files: {}",
            st.visible.len(),
            self.expected.rows.len(),
            missing.len(),
            &missing[..missing.len().min(5)],
            list_dir(&self.output())
        ))
    }

    fn report(&self, plan: &Plan, st: &RunState, e: &str) -> String {
        let mut s = format!(
            "crash trial failed: job {}, seed {} (FLOW_CRASH_SEED={} repeats the kill \
             schedule), trial {}, --checkpoint-interval {} --checkpoints-retained {}, kills planned {}\n{e}\n\
             args: {:?}\nattempts (the failure-free run took {:.3} s):\n",
            self.job.name,
            self.seed,
            self.seed,
            self.index,
            plan.interval,
            plan.retained,
            plan.kills,
            self.job.args,
            self.expected.took.as_secs_f64()
        );
        s.push_str(&history(&st.attempts));
        if let Some(n) = st.attempts.len().checked_sub(1) {
            let log = self.dir.join(format!("attempt-{n:03}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = write!(s, "output of attempt {n}:\n{}", tail(&text, 30));
        }
        let _ = write!(s, "\ntrial directory: {}", self.dir.display());
        s
    }
}

/// One line per run: parallelism, kill time, outcome, checkpoint restored, rows visible.
fn history(attempts: &[Attempt]) -> String {
    let mut s = String::new();
    for (i, a) in attempts.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {i:>3}: -p {}{} kill {} -> {} after {:.3} s{}{}, {} rows visible",
            a.parallelism,
            if a.restore { " --restore" } else { "" },
            a.kill.map_or("-".to_string(), |k| k.to_string()),
            a.outcome,
            a.ran.as_secs_f64(),
            a.restored
                .map_or(String::new(), |c| format!(", restored checkpoint {c}")),
            if a.fresh {
                ", no checkpoint: fresh start"
            } else {
                ""
            },
            a.visible
        );
    }
    s
}

/// The rows of `a` not in `b`, both sorted: a linear merge (outputs of millions of rows).
fn not_in<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    let mut out = Vec::new();
    let mut j = 0;
    for x in a {
        while j < b.len() && b[j] < *x {
            j += 1;
        }
        if j < b.len() && b[j] == *x {
            j += 1;
        } else {
            out.push(x);
        }
    }
    out
}

/// The names in a directory (none if it does not exist).
fn names(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

fn was_killed(status: &ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        !status.success()
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn list_dir(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    format!("{} ({len} B)", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(", ")
}

/// Writes `n` events of [`crate::generated_event`] as `key,timestamp_ms,value` CSV lines, the
/// input of `window_sum`; returns the bytes written.
pub fn write_events(path: &Path, n: u64) -> std::io::Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut written = 0u64;
    let mut line = String::with_capacity(32);
    for i in 0..n {
        let (key, ts, value) = crate::generated_event(i);
        line.clear();
        let _ = writeln!(line, "{},{ts},{value}", key.as_str());
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_in_is_a_sorted_difference() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, b) = (v(&["a", "b", "b", "d"]), v(&["b", "c", "d"]));
        assert_eq!(not_in(&a, &b), [&"a".to_string(), &"b".to_string()]);
        assert!(not_in(&b, &v(&["a", "b", "c", "d"])).is_empty());
        assert_eq!(not_in(&b, &[]).len(), 3);
    }

    #[test]
    fn watches_match_the_file_names_of_the_store_and_the_sink() {
        assert!(Watch::CheckpointWrite.matches("segment-00000000000000000003-000000.seg"));
        assert!(Watch::CheckpointWrite.matches("checkpoint-00000000000000000003.manifest.tmp"));
        assert!(Watch::Manifest.matches("checkpoint-00000000000000000003.manifest"));
        assert!(!Watch::Manifest.matches("checkpoint-00000000000000000003.manifest.tmp"));
        assert!(Watch::Pending.matches(".part-0000000003-00001-0.csv.pending"));
        assert!(Watch::Published.matches("part-0000000003-00001-0.csv"));
        assert!(!Watch::Published.matches(".part-00001-0.csv.inprogress"));
    }

    #[test]
    fn xorshift_is_seeded() {
        let (mut a, mut b) = (XorShift::new(0), XorShift::new(0));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(XorShift::new(1).next_u64(), XorShift::new(2).next_u64());
        let d = a.between(Duration::from_millis(10), Duration::from_millis(20));
        assert!(d >= Duration::from_millis(10) && d < Duration::from_millis(20));
    }
}
