//! The driver: one thread for the whole process (named `qmp-smol`, started
//! by the first connect) that serves the sockets no caller is reading, and
//! keeps a coarse clock for the rest of the crate.
//!
//! A connection is a task of this thread only in the sense of a [`Waker`]:
//! the connection registers that waker with async-io (for readability while
//! no caller reads, for room to write while bytes wait), and whichever
//! thread runs async-io's reactor wakes it. Waking queues the connection
//! here; the thread then runs [`Shared::drive`], which reads or writes
//! without blocking and registers the waits again. Registering a wait wakes
//! nobody, so connecting, calling and closing need nothing from this thread:
//! it only works when bytes arrive that no caller is there to read, or when
//! the socket was too full to take a write.
//!
//! The thread never runs the reactor itself (it parks, it does not
//! `block_on`), so it never holds the reactor while a caller's `block_on`
//! could: a caller waiting for its reply is woken by the kernel directly.
//!
//! The clock: while connections are [watched](watch) or [`Deadline`]s are
//! pending, the thread wakes every [`TICK`] to call [`Shared::tick`] on each
//! watched connection and to fire the deadlines that have passed. It parks
//! for good once nothing has been pending for [`LINGER`] ticks. These
//! timers cost the callers nothing: an async-io timer would make every wait
//! of the caller's reactor arm a kernel timer.

use crate::shared::Shared;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The clock's resolution: how often watched connections are looked at and
/// deadlines checked.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Ticks with nothing pending before the thread parks until woken.
const LINGER: u32 = 10;

/// Connections woken and not yet driven, oldest first.
static QUEUE: Mutex<VecDeque<Arc<Task>>> = Mutex::new(VecDeque::new());
/// Connections to tick.
static WATCHED: Mutex<Vec<Arc<Task>>> = Mutex::new(Vec::new());
/// Deadlines not yet passed (or given up, until the next tick).
static ALARMS: Mutex<Vec<Arc<Alarm>>> = Mutex::new(Vec::new());
/// The thread parks with a timeout (ticks): registering a watch or a
/// deadline needs no unpark.
static TICKING: AtomicBool = AtomicBool::new(false);
/// The driver thread, once started.
static THREAD: OnceLock<Thread> = OnceLock::new();

/// One connection as the driver sees it.
pub(crate) struct Task {
    shared: Weak<Shared>,
    /// In [`QUEUE`] already: waking again adds nothing.
    queued: AtomicBool,
    /// The connection's trace events group under one span.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Task {
    /// The task of the connection `shared`.
    pub(crate) fn new(shared: Weak<Shared>) -> Arc<Task> {
        Arc::new(Task {
            shared,
            queued: AtomicBool::new(false),
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!("qmp"),
        })
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&QUEUE).push_back(self.clone());
        unpark();
    }
}

/// Starts the driver thread if it is not running yet; from then on, tasks
/// may be woken and watched and deadlines set.
pub(crate) fn start() -> io::Result<()> {
    static STARTING: Mutex<()> = Mutex::new(());
    if THREAD.get().is_some() {
        return Ok(());
    }
    let _starting = lock(&STARTING);
    if THREAD.get().is_none() {
        let thread = std::thread::Builder::new()
            .name("qmp-smol".into())
            .spawn(run)?;
        THREAD.set(thread.thread().clone()).ok();
    }
    Ok(())
}

/// Calls [`Shared::tick`] on `task`'s connection every [`TICK`] until it
/// says to stop.
pub(crate) fn watch(task: &Arc<Task>) {
    lock(&WATCHED).push(task.clone());
    keep_ticking();
}

/// A future that is ready once `at` has passed, within a [`TICK`].
pub(crate) struct Deadline {
    at: Instant,
    alarm: Option<Arc<Alarm>>,
}

struct Alarm {
    at: Instant,
    waker: Mutex<Option<Waker>>,
    /// Passed or given up: the next tick forgets it.
    done: AtomicBool,
}

impl Deadline {
    /// Ready at `at`.
    pub(crate) fn at(at: Instant) -> Deadline {
        Deadline { at, alarm: None }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.at {
            return Poll::Ready(());
        }
        match &this.alarm {
            Some(alarm) => {
                let mut waker = lock(&alarm.waker);
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
            }
            None => {
                let alarm = Arc::new(Alarm {
                    at: this.at,
                    waker: Mutex::new(Some(cx.waker().clone())),
                    done: AtomicBool::new(false),
                });
                lock(&ALARMS).push(alarm.clone());
                keep_ticking();
                this.alarm = Some(alarm);
            }
        }
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(alarm) = &self.alarm {
            alarm.done.store(true, Ordering::Release);
        }
    }
}

/// Makes sure the thread ticks: wakes it if it parked for good.
fn keep_ticking() {
    // Pairs with the thread's store before it looks at the lists one last
    // time: either it sees what was just added, or this sees it parked.
    if !TICKING.load(Ordering::SeqCst) {
        unpark();
    }
}

fn unpark() {
    if let Some(thread) = THREAD.get() {
        thread.unpark();
    }
}

/// The driver thread: drives each connection woken, ticks while anything
/// is watched or due, parks when nothing is.
fn run() {
    TICKING.store(true, Ordering::SeqCst);
    let mut next_tick = Instant::now() + TICK;
    let mut idle = 0;
    loop {
        let next = lock(&QUEUE).pop_front();
        if let Some(task) = next {
            task.queued.store(false, Ordering::Release);
            with_connection(&task, Shared::drive);
            continue;
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            if tick(now) {
                idle = 0;
            } else {
                idle += 1;
            }
        }
        if idle < LINGER {
            std::thread::park_timeout(next_tick.saturating_duration_since(now));
            continue;
        }
        TICKING.store(false, Ordering::SeqCst);
        if lock(&WATCHED).is_empty() && lock(&ALARMS).is_empty() {
            // An unpark since the queue was looked at returns at once.
            std::thread::park();
        }
        TICKING.store(true, Ordering::SeqCst);
        next_tick = Instant::now() + TICK;
        idle = 0;
    }
}

/// One tick: the watched connections, then the deadlines. Returns whether
/// anything is still pending.
fn tick(now: Instant) -> bool {
    let watched = std::mem::take(&mut *lock(&WATCHED));
    let kept: Vec<_> = watched
        .into_iter()
        .filter(|task| with_connection(task, Shared::tick).unwrap_or(false))
        .collect();
    let mut watched = lock(&WATCHED);
    watched.extend(kept);
    let watching = !watched.is_empty();
    drop(watched);

    let mut due = Vec::new();
    let mut alarms = lock(&ALARMS);
    alarms.retain(|alarm| {
        if alarm.done.load(Ordering::Acquire) {
            return false;
        }
        if now < alarm.at {
            return true;
        }
        due.extend(lock(&alarm.waker).take());
        false
    });
    let alarming = !alarms.is_empty();
    drop(alarms);
    due.into_iter().for_each(Waker::wake);
    watching || alarming
}

/// Runs `f` on `task`'s connection, if it still exists.
fn with_connection<R>(task: &Task, f: impl FnOnce(&Shared) -> R) -> Option<R> {
    let shared = task.shared.upgrade()?;
    #[cfg(feature = "tracing")]
    let _span = task.span.enter();
    // A panic would be a bug in us; it must not stop every connection.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&shared))).ok()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
