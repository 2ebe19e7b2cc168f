//! The few runtime services a test body needs, with the same names and
//! signatures on tokio and on smol, so that [`on_both_runtimes!`] can compile
//! one body against both adapters. Timers come from the client's own
//! [`Runtime`] trait; only running a future and spawning one are the
//! runtime's own calls.
//!
//! [`on_both_runtimes!`]: crate::on_both_runtimes

use qmp_client::Runtime;
use std::future::{poll_fn, Future, IntoFuture};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Polls `future` once, on any runtime: whether it finished. A test takes
/// a call's first step with it (the command is issued) and then keeps the
/// future aside, or drops it.
pub async fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> bool {
    let mut future = Some(future);
    poll_fn(|cx| match future.take() {
        Some(future) => Poll::Ready(future.poll(cx).is_ready()),
        None => Poll::Ready(true),
    })
    .await
}

/// Waits for `duration` on runtime `R`'s timer.
async fn sleep_on<R: Runtime>(duration: Duration) {
    let runtime = R::current().expect("called inside the runtime");
    runtime.sleep_until(Instant::now() + duration).await
}

/// Runs `future` for at most `limit`, on runtime `R`'s timer.
async fn timeout_on<R: Runtime, F: IntoFuture>(
    limit: Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    let runtime = R::current().expect("called inside the runtime");
    let mut future = pin!(future.into_future());
    let mut sleep = pin!(runtime.sleep_until(Instant::now() + limit));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// A future did not finish within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Compiles the given items twice: in `mod tokio_runtime`, where `qmp` is
/// `qmp_tokio` and `rt` is [`tokio_rt`], and in `mod smol_runtime`, where
/// `qmp` is `qmp_smol` and `rt` is [`smol_rt`]. Both see the enclosing
/// module's items through `use super::*`.
///
/// ```ignore
/// qmp_tests::on_both_runtimes! {
///     #[test]
///     fn greeting() {
///         rt::block_on(async {
///             let qmp = qmp::Qmp::connect_unix(path, Default::default()).await.unwrap();
///             assert_eq!(qmp.greeting().version.qemu().unwrap().major, 10);
///         })
///     }
/// }
/// ```
#[macro_export]
macro_rules! on_both_runtimes {
    ($($body:tt)*) => {
        mod tokio_runtime {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use qmp_tokio as qmp;
            #[allow(unused_imports)]
            use $crate::runtime::tokio_rt as rt;
            $($body)*
        }
        mod smol_runtime {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use qmp_smol as qmp;
            #[allow(unused_imports)]
            use $crate::runtime::smol_rt as rt;
            $($body)*
        }
    };
}

/// Runtime services on tokio (a multi-threaded runtime per test).
pub mod tokio_rt {
    use super::{Duration, Elapsed, IntoFuture};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Runs `future` to completion on a fresh multi-threaded runtime.
    pub fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future)
    }

    /// A spawned task; awaiting it gives the task's output (and re-raises
    /// its panic). Dropping it cancels the task, as smol's does.
    pub struct Task<T>(tokio::task::JoinHandle<T>);

    impl<T> Drop for Task<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    impl<T> Future for Task<T> {
        type Output = T;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
            Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
                Ok(value) => value,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("task failed: {e}"),
            })
        }
    }

    /// Spawns `future` on the current runtime.
    pub fn spawn<F>(future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Task(tokio::spawn(future))
    }

    /// Waits for `duration`.
    pub async fn sleep(duration: Duration) {
        super::sleep_on::<qmp_tokio::Tokio>(duration).await
    }

    /// Runs `future` for at most `limit`.
    pub async fn timeout<F: IntoFuture>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
        super::timeout_on::<qmp_tokio::Tokio, F>(limit, future).await
    }
}

/// Runtime services on smol (its global executor; timers from async-io).
pub mod smol_rt {
    use super::{Duration, Elapsed, IntoFuture};
    use std::future::Future;

    /// A spawned task; awaiting it gives the task's output. Dropping it
    /// cancels the task.
    pub use smol::Task;

    /// Runs `future` to completion on the calling thread.
    pub fn block_on<F: Future>(future: F) -> F::Output {
        smol::block_on(future)
    }

    /// Spawns `future` on smol's global executor.
    pub fn spawn<F>(future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::spawn(future)
    }

    /// Waits for `duration`.
    pub async fn sleep(duration: Duration) {
        super::sleep_on::<qmp_smol::AsyncIo>(duration).await
    }

    /// Runs `future` for at most `limit`.
    pub async fn timeout<F: IntoFuture>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
        super::timeout_on::<qmp_smol::AsyncIo, F>(limit, future).await
    }
}
