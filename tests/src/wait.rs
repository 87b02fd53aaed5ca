//! Awaiting an event with a timeout, never sleeping in its place.

use std::fmt::Debug;
use std::time::Duration;

use tokio::sync::mpsc;

/// The first event from `events` matching `pred` within `within`; the
/// others are skipped (and printed). Panics, naming `task`, when the
/// sender is gone or time is up: a test's way of failing.
pub async fn expect_event<T: Debug>(
    events: &mut mpsc::Receiver<T>,
    task: &str,
    within: Duration,
    pred: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if pred(&event) => return event,
            Ok(Some(event)) => eprintln!("skipped event {event:?}"),
            Ok(None) => panic!("{task} ended"),
            Err(_) => panic!("no matching event from {task} within {within:?}"),
        }
    }
}

/// Cancels `shutdown` and awaits `task`, which must end within `within`
/// without panicking.
pub async fn stop_task(
    shutdown: &tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    what: &str,
    within: Duration,
) {
    shutdown.cancel();
    if let Some(task) = task {
        tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("{what} did not stop within {within:?}"))
            .unwrap_or_else(|e| panic!("{what} panicked: {e}"));
    }
}
