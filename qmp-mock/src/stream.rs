//! The mock's socket, Unix or TCP, and the thread that reads it.
//!
//! A connection's thread waits on one channel for everything that can
//! happen to it: bytes from the client, the client's end of stream, and
//! events the test injects. A reader thread fills the channel, so the
//! client's writes never block while a script stalls.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

/// A connected socket of either family.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    pub(crate) fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        };
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(bytes),
            Stream::Tcp(s) => s.write_all(bytes),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

/// What a connection's thread can be woken for.
#[derive(Debug)]
pub(crate) enum Input {
    /// Bytes the client wrote.
    Bytes(Vec<u8>),
    /// The client closed its side, or the socket failed.
    Eof,
    /// The test asks for an event to be sent: name and data.
    Event(String, Value),
}

/// Starts the thread that reads `stream` into `inputs` until it closes.
pub(crate) fn spawn_reader(stream: &Stream, inputs: mpsc::Sender<Input>) -> io::Result<()> {
    let mut reader = stream.try_clone()?;
    std::thread::Builder::new()
        .name("qmp-mock-reader".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if inputs.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = inputs.send(Input::Eof);
        })?;
    Ok(())
}
