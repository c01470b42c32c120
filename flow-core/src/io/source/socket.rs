//! `socket_lines`: lines of text from a TCP server, read on a thread of its own. A socket
//! cannot be replayed: it records no position in checkpoints, and a job restored from a
//! checkpoint reads what the new connection sends.
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::record::Batch;
use crate::runtime::operator::Identity;
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;
use std::io::BufRead;

type LineBatch = std::result::Result<Vec<String>, Error>;

/// Reads lines from a TCP server on a thread of its own (I/O never blocks a pool worker).
pub(crate) struct SocketInput {
    pub(crate) address: String,
    pub(crate) rx: Option<crossbeam_channel::Receiver<LineBatch>>,
    pub(crate) done: bool,
}

impl SocketInput {
    fn start(&mut self, cx: &TaskCx<'_>) {
        let (tx, rx) = crossbeam_channel::bounded::<LineBatch>(16);
        self.rx = Some(rx);
        let shared = cx.shared.clone();
        let id = cx.id;
        let address = self.address.clone();
        let spawned = std::thread::Builder::new()
            .name("flow-socket".into())
            .spawn(move || {
                let net = |e| Error::Net {
                    address: address.clone(),
                    source: e,
                };
                let run = || -> Result<()> {
                    let stream = std::net::TcpStream::connect(&address).map_err(net)?;
                    stream
                        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
                        .map_err(net)?;
                    tracing::info!(%address, "socket source connected");
                    let mut r = std::io::BufReader::with_capacity(1 << 16, stream);
                    let mut batch = Vec::new();
                    let mut line = Vec::new();
                    let mut line_no = 0u64;
                    loop {
                        if shared.stopping() {
                            break;
                        }
                        match r.read_until(b'\n', &mut line) {
                            Ok(0) => break,
                            Ok(_) if line.last() != Some(&b'\n') => continue, // timed out mid-line
                            Ok(_) => {
                                line_no += 1;
                                let l = line.strip_suffix(b"\n").unwrap_or(&line);
                                let l = l.strip_suffix(b"\r").unwrap_or(l);
                                match String::from_utf8(l.to_vec()) {
                                    Ok(s) => batch.push(s),
                                    Err(e) => {
                                        return Err(Error::NetRecord {
                                            address: address.clone(),
                                            line: line_no,
                                            message: format!(
                                                "line is not valid UTF-8 (byte {} of the line)",
                                                e.utf8_error().valid_up_to() + 1
                                            ),
                                        })
                                    }
                                }
                                line.clear();
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(e) => return Err(net(e)),
                        }
                        // Hand over what has arrived once nothing more is buffered.
                        if !batch.is_empty() && (r.buffer().is_empty() || batch.len() >= 1024) {
                            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                                return Ok(());
                            }
                            shared.notify(id);
                        }
                    }
                    if !batch.is_empty() {
                        let _ = tx.send(Ok(batch));
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    let _ = tx.send(Err(e));
                }
                drop(tx);
                shared.notify(id);
            });
        if let Err(source) = spawned {
            cx.shared.fail(Error::Spawn {
                what: "socket reader",
                source,
            });
        }
    }
}

impl Input<String> for SocketInput {
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<String>) -> Result<Poll> {
        if self.done {
            return Ok(Poll::End);
        }
        if self.rx.is_none() {
            self.start(cx);
        }
        let Some(rx) = self.rx.as_ref() else {
            return Ok(Poll::End);
        };
        match rx.try_recv() {
            Ok(Ok(lines)) => {
                out.data = lines;
                Ok(Poll::Data)
            }
            Ok(Err(e)) => Err(e),
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(Poll::Pending),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.done = true;
                Ok(Poll::End)
            }
        }
    }

    /// No position: what a server sent cannot be asked for again.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

impl Env {
    /// Lines of text from a TCP server at `address` (`host:port`), as Flink's
    /// `socketTextStream`. Unbounded: it ends when the server closes the connection or the job
    /// is stopped. Non-parallel.
    ///
    /// A socket cannot be replayed: with checkpoints, a restored job reads what the new
    /// connection sends (what the old one sent after the checkpoint is not read again).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use std::io::Write;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let address = listener.local_addr()?.to_string();
    /// let server = std::thread::spawn(move || -> std::io::Result<()> {
    ///     let (mut conn, _) = listener.accept()?;
    ///     conn.write_all(b"hello\nworld\n") // then closes the connection
    /// });
    /// let mut env = Env::new(Config::default());
    /// let lines = env.socket_lines(address).collect();
    /// env.execute()?; // ends when the server closes the connection
    /// server.join().expect("server thread")?;
    /// assert_eq!(lines.take(), vec!["hello", "world"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn socket_lines(&mut self, address: impl Into<String>) -> Stream<Identity<String>> {
        let address = address.into();
        self.source(1, format!("socket_lines({address})"), false, move |_, _| {
            Box::new(SocketInput {
                address: address.clone(),
                rx: None,
                done: false,
            }) as Box<dyn Input<String>>
        })
    }
}
