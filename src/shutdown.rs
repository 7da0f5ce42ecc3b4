//! Carries "stop now" from the signal handler (or a test) to every task.
//!
//! One [`ShutdownTrigger`] is held by whoever decides to stop; each task holds
//! a cloned [`Shutdown`] and `select!`s on [`Shutdown::wait`]. A trigger that
//! is dropped counts as a shutdown too, so a panicking owner stops the rest.

use tokio::sync::watch;

/// The sending side: call [`ShutdownTrigger::trigger`] once to stop everything.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving side, cheap to clone into each task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A linked trigger and receiver.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        // Err only means every receiver is gone: nothing left to stop.
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Whether shutdown has been asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has been asked for (or the trigger dropped).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger was dropped: treat it as a shutdown.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_trigger() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_shutdown());
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.wait().await }
        });
        trigger.trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_shutdown());
    }

    #[tokio::test]
    async fn dropped_trigger_counts_as_shutdown() {
        let (trigger, shutdown) = channel();
        drop(trigger);
        shutdown.wait().await;
    }
}
