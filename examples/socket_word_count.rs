//! Flink's socket word count: counts the words of lines arriving on a TCP connection and
//! prints each word's updated count as it changes. Runs until the connection closes or Ctrl-C.
//!
//! ```text
//! nc -lk 9999 &     # then type lines into it
//! cargo run --release --example socket_word_count -- --address localhost:9999
//! cargo run --release --example socket_word_count   # serves built-in text on a local port itself
//! ```
use flow_core::prelude::*;
use flow_examples::tokenize;
use std::io::Write;

/// Arguments of the socket word count job.
#[derive(Args, Debug)]
struct SocketArgs {
    /// Server to read lines from (`host:port`). Without it, the example serves a few built-in
    /// lines on a local port and reads those
    #[arg(long, value_name = "HOST:PORT")]
    address: Option<String>,
}

/// Counts words arriving on a socket and prints the running counts as `word,count`.
#[stream_job]
fn socket_word_count(env: &mut Env, args: SocketArgs) -> flow_core::Result<()> {
    let address = match args.address {
        Some(a) => a,
        None => serve_built_in_text()?,
    };
    env.socket_lines(address)
        .flat_map(tokenize)
        .key_by(|w| w.clone())
        .count()
        .print();
    Ok(())
}

/// Serves a few lines once on 127.0.0.1 (any free port) and closes the connection.
fn serve_built_in_text() -> flow_core::Result<String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| flow_core::Error::Net {
            address: "127.0.0.1:0".into(),
            source: e,
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| flow_core::Error::Net {
            address: "127.0.0.1:0".into(),
            source: e,
        })?
        .to_string();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            for line in [
                "to be or not to be",
                "that is the question",
                "to be is to do",
            ] {
                let _ = writeln!(conn, "{line}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    });
    eprintln!("serving built-in text on {address}");
    Ok(address)
}
