//! Runs many futures concurrently inside one task, polling only the ones
//! that were woken (what `FuturesUnordered` does, without the dependency).
//! A naive join would poll every pending future on each wake-up and
//! measure itself rather than the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

struct Ready {
    woken: Mutex<(Vec<usize>, Option<Waker>)>,
}

struct Slot {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parent = {
            let mut woken = self.ready.woken.lock().unwrap();
            woken.0.push(self.index);
            woken.1.clone()
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

/// Awaits all of `futures`; returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let count = futures.len();
    let ready = Arc::new(Ready {
        woken: Mutex::new(((0..count).collect(), None)),
    });
    let wakers: Vec<Waker> = (0..count)
        .map(|index| {
            Waker::from(Arc::new(Slot {
                index,
                ready: ready.clone(),
            }))
        })
        .collect();
    let mut futures: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..count).map(|_| None).collect();
    let mut left = count;
    let mut batch = Vec::new();
    std::future::poll_fn(move |cx| {
        {
            let mut woken = ready.woken.lock().unwrap();
            if woken.1.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                woken.1 = Some(cx.waker().clone());
            }
            std::mem::swap(&mut woken.0, &mut batch);
        }
        // One batch per poll: a future that is out of its runtime's budget
        // wakes itself at once, and looping here would never give the
        // runtime the chance to refill it.
        for index in batch.drain(..) {
            let Some(future) = futures[index].as_mut() else {
                continue;
            };
            let mut slot_cx = Context::from_waker(&wakers[index]);
            if let Poll::Ready(output) = future.as_mut().poll(&mut slot_cx) {
                outputs[index] = Some(output);
                futures[index] = None;
                left -= 1;
            }
        }
        if left == 0 {
            Poll::Ready(outputs.drain(..).map(|o| o.expect("joined")).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}
