//! Reference floors per column: the raw-socket floor's work, done with the
//! runtime's own socket from where the adapter's column calls from (tokio's
//! `block_on`, a tokio task, `smol::block_on`). What is left of an adapter's
//! ratio against these is the adapter's own cost; what separates these from
//! the blocking floor is the runtime's (from tokio's multi-thread
//! `block_on`, say, every read crosses from the worker that sees the socket
//! ready to the `block_on` thread).

/// Sequential round trips and connections over `$stream` (a runtime's Unix
/// stream type), with `$io`'s read and write extension traits, run by
/// `$run`.
macro_rules! runtime_floor {
    ($module:ident, $($stream:ident)::+, $($io:ident)::+, $run:path) => {
        mod $module {
            use super::floor;
            use super::measure::Subject;
            use std::path::{Path, PathBuf};
            use std::time::{Duration, Instant};
            use $($io)::+::{AsyncReadExt, AsyncWriteExt};
            use $($stream)::+ as Stream;

            /// A connected, negotiated stream and its read buffer.
            struct Line {
                stream: Stream,
                buf: Vec<u8>,
            }

            impl Line {
                async fn connect(path: &Path) -> Line {
                    let stream = Stream::connect(path).await.expect("raw floor: connect");
                    let mut line = Line {
                        stream,
                        buf: vec![0; 64 * 1024],
                    };
                    line.read_line().await;
                    line.write(floor::CAPABILITIES_LINE).await;
                    line.read_line().await;
                    line
                }

                async fn write(&mut self, bytes: &[u8]) {
                    self.stream.write_all(bytes).await.expect("raw floor: write");
                }

                /// Reads one line: every answer of these cases is exactly
                /// one line, and the next comes only once it is asked for.
                async fn read_line(&mut self) {
                    let mut end = 0;
                    loop {
                        let n = self
                            .stream
                            .read(&mut self.buf[end..])
                            .await
                            .expect("raw floor: read");
                        assert!(n > 0, "raw floor: the mock closed the connection");
                        if memchr::memchr(b'\n', &self.buf[end..end + n]).is_some() {
                            return;
                        }
                        end += n;
                    }
                }
            }

            pub struct Sequential(PathBuf, Option<Line>);

            impl Sequential {
                pub fn new(path: &Path) -> Self {
                    Sequential(path.to_path_buf(), None)
                }
            }

            impl Subject for Sequential {
                fn run(&mut self, ops: u64) -> Duration {
                    let path = self.0.clone();
                    let line = self.1.take();
                    let (took, line) = $run(async move {
                        let mut line = match line {
                            Some(line) => line,
                            None => Line::connect(&path).await,
                        };
                        let start = Instant::now();
                        for _ in 0..ops {
                            line.write(floor::STATUS_LINE).await;
                            line.read_line().await;
                        }
                        (start.elapsed(), line)
                    });
                    self.1 = Some(line);
                    took
                }
            }

            pub struct Connect(pub PathBuf);

            impl Subject for Connect {
                fn run(&mut self, ops: u64) -> Duration {
                    let path = self.0.clone();
                    $run(async move {
                        let start = Instant::now();
                        for _ in 0..ops {
                            drop(Line::connect(&path).await);
                        }
                        start.elapsed()
                    })
                }
            }
        }
    };
}
