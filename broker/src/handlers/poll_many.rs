//! Polling several futures of one type at once, from one task.
//!
//! The broker does not depend on the `futures` crate, and the handlers need
//! only two shapes: await every future ([`join_all`], Produce's acks=all
//! waits) or the first to finish ([`select_first`], Fetch's wait on several
//! partition views). Both box each future once and poll them in order on
//! every wake; they are meant for the handful of futures one request holds.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Awaits every future and returns their outputs in input order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future completed")).collect()
}

/// Awaits the first future to finish and returns its output; the others are
/// dropped. When several are ready at once the earliest in input order wins.
/// With no futures it never finishes (bound it with a timeout).
pub async fn select_first<F: Future>(futures: impl IntoIterator<Item = F>) -> F::Output {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        for future in pending.iter_mut() {
            if let Poll::Ready(v) = future.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn join_all_waits_for_every_future_and_keeps_input_order() {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<u32>()).unzip();
        let joined = tokio::spawn(join_all(receivers.into_iter().map(|r| async move { r.await.expect("sent") })));
        // Complete them out of order, yielding in between so each wakes the join.
        for (i, tx) in senders.into_iter().enumerate().rev() {
            tx.send(i as u32 * 10).expect("receiver alive");
            tokio::task::yield_now().await;
        }
        assert_eq!(joined.await.expect("join task"), vec![0, 10, 20]);
        assert!(join_all(std::iter::empty::<std::future::Ready<u8>>()).await.is_empty());
    }

    #[tokio::test]
    async fn select_first_returns_the_first_finisher() {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<u32>()).unzip();
        let selected = tokio::spawn(select_first(receivers.into_iter().map(|r| async move { r.await.ok() })));
        tokio::task::yield_now().await;
        let mut senders = senders.into_iter();
        let (_first, second) = (senders.next(), senders.next().expect("three"));
        second.send(7).expect("receiver alive");
        assert_eq!(selected.await.expect("select task"), Some(7));
        // Ready together: input order decides.
        assert_eq!(select_first([std::future::ready(1), std::future::ready(2)]).await, 1);
        // None at all: never finishes.
        let none = select_first(std::iter::empty::<std::future::Ready<u8>>());
        assert!(tokio::time::timeout(Duration::from_millis(5), none).await.is_err());
    }
}
