//! The mock's socket, Unix or TCP, and what a connection's thread waits
//! for: the client's bytes, or events the test asks it to send.
//!
//! The connection's thread reads the socket itself. It sleeps in one
//! `poll` on the socket and a pipe; the test wakes it through the pipe
//! when it queues an event. So a message costs one read and no hand-over
//! between threads, and a connection nobody talks to costs nothing.

use rustix::event::{poll, PollFd, PollFlags};
use rustix::pipe::{pipe_with, PipeFlags};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

/// Events queued by the test for one connection, and the pipe that wakes
/// its thread.
#[derive(Debug)]
struct Queue {
    events: Mutex<VecDeque<(String, Value)>>,
    wake: OwnedFd,
    /// The connection is still served.
    open: AtomicBool,
}

/// The test's end: queues events for the connection and wakes it.
#[derive(Debug, Clone)]
pub(crate) struct Injector {
    queue: Arc<Queue>,
}

impl Injector {
    /// Queues an event; `false` once the connection has ended.
    pub(crate) fn send(&self, name: &str, data: Value) -> bool {
        if !self.queue.open.load(Ordering::Acquire) {
            return false;
        }
        lock(&self.queue.events).push_back((name.to_string(), data));
        // A full pipe already holds a wake-up: the error is of no matter.
        let _ = rustix::io::write(&self.queue.wake, &[1]);
        true
    }
}

/// What the connection's thread was woken for.
pub(crate) enum Input {
    /// Bytes the client wrote.
    Bytes(Vec<u8>),
    /// The client closed its side, or the socket failed.
    Eof,
    /// The test queued an event: name and data.
    Event(String, Value),
}

/// The connection's end: the socket it reads and the queue it drains.
#[derive(Debug)]
pub(crate) struct Inbox {
    stream: Stream,
    queue: Arc<Queue>,
    woken: OwnedFd,
    buffer: Vec<u8>,
}

impl Inbox {
    /// An inbox reading `stream` (a clone of the socket the peer writes).
    pub(crate) fn new(stream: Stream) -> io::Result<(Inbox, Injector)> {
        let (woken, wake) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let queue = Arc::new(Queue {
            events: Mutex::new(VecDeque::new()),
            wake,
            open: AtomicBool::new(true),
        });
        let inbox = Inbox {
            stream,
            queue: queue.clone(),
            woken,
            buffer: vec![0; 64 * 1024],
        };
        Ok((inbox, Injector { queue }))
    }

    /// Sleeps until the client writes or closes, or the test queues an
    /// event; queued events come first.
    pub(crate) fn next(&mut self) -> Input {
        loop {
            if let Some((name, data)) = lock(&self.queue.events).pop_front() {
                return Input::Event(name, data);
            }
            let mut fds = [
                PollFd::new(&self.stream, PollFlags::IN),
                PollFd::new(&self.woken, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return Input::Eof,
            }
            let readable = !fds[0].revents().is_empty();
            let woken = !fds[1].revents().is_empty();
            if woken {
                let mut drained = [0u8; 64];
                while matches!(rustix::io::read(&self.woken, &mut drained), Ok(n) if n > 0) {}
            }
            if readable {
                return match self.stream.read(&mut self.buffer) {
                    Ok(0) => Input::Eof,
                    Ok(n) => Input::Bytes(self.buffer[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => Input::Eof,
                };
            }
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.queue.open.store(false, Ordering::Release);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
