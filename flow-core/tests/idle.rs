//! An idle job uses no CPU. In a test binary of its own, so that no other test's work runs in
//! the process while its CPU time is measured.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;

/// CPU time (user + system) of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn socket_source_counts_words_and_an_idle_job_uses_no_cpu() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        writeln!(conn, "to be or not to be").unwrap();
        ready_rx.recv().unwrap(); // hold the connection open while the job idles
        writeln!(conn, "To BE!").unwrap();
    });
    let words = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = words.clone();
    let job = std::thread::spawn(move || {
        let mut env = env(2);
        let out = env
            .socket_lines(address)
            .flat_map(|l| words_of(&l))
            .inspect(move |_| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .key_by(|w| w.clone())
            .count()
            .collect();
        env.execute().map(|_| out.take())
    });
    // Wait until the first line went through (the job is then idle), however long that takes.
    let start = std::time::Instant::now();
    while words.load(std::sync::atomic::Ordering::SeqCst) < 6 {
        assert!(
            start.elapsed().as_secs() < 60,
            "the first line never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100)); // let the counts settle
    let before = cpu_ticks();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let idle_ticks = cpu_ticks() - before;
    ready_tx.send(()).unwrap();
    server.join().unwrap();
    let updates = job.join().unwrap().unwrap();
    // ticks are 10 ms: an idle second must cost well under a tenth of one core
    assert!(
        idle_ticks <= 10,
        "idle job used {idle_ticks} ticks of CPU in 1 s"
    );
    let mut last = BTreeMap::new();
    for (k, n) in updates {
        last.insert(k, n);
    }
    let want: BTreeMap<String, u64> = [("be", 3), ("not", 1), ("or", 1), ("to", 3)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(last, want);
}
