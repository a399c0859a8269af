//! Background tasks under supervision: a task that panics is logged and
//! started again after a backoff; one that keeps panicking ends the process
//! (through [`Supervisor::fatal`]) instead of leaving a dead engine behind a
//! healthy-looking `/healthz`. [`TaskBoard`] is what `/healthz` reports.
//!
//! Restarting is right for every carehook task: each keeps its lasting
//! state outside the task (the queue of a channel, the database, the set of
//! deliveries the dispatcher holds), so a fresh run starts from the truth
//! and not from whatever the panic interrupted.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Panics within [`PANIC_WINDOW`] that make a task give up for good.
pub const MAX_PANICS: usize = 5;
pub const PANIC_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Wait before the first restart; doubles with each recent panic.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A task's state as `/healthz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// Panicked, waiting for its restart.
    Restarting,
    /// Ended normally (at shutdown).
    Stopped,
    /// Panicked too often; the process is ending.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: TaskState,
    panics: u32,
}

/// Every supervised task's state, shared with `/healthz`.
#[derive(Debug, Default)]
pub struct TaskBoard {
    tasks: Mutex<BTreeMap<&'static str, Entry>>,
}

impl TaskBoard {
    fn set(&self, name: &'static str, state: TaskState, panicked: bool) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let entry = tasks.entry(name).or_insert(Entry { state, panics: 0 });
        entry.state = state;
        if panicked {
            entry.panics += 1;
        }
    }

    /// Each task's state, by name.
    pub fn states(&self) -> BTreeMap<String, TaskState> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .iter()
            .map(|(k, e)| (k.to_string(), e.state))
            .collect()
    }

    /// Panics since the start, per task that had any.
    pub fn panics(&self) -> BTreeMap<String, u32> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .iter()
            .filter(|(_, e)| e.panics > 0)
            .map(|(k, e)| (k.to_string(), e.panics))
            .collect()
    }

    /// False while any task is restarting or has failed.
    pub fn healthy(&self) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .values()
            .all(|e| matches!(e.state, TaskState::Running | TaskState::Stopped))
    }
}

/// Starts supervised tasks; says when one gave up.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub board: Arc<TaskBoard>,
    fatal: mpsc::UnboundedSender<String>,
    stop: watch::Receiver<bool>,
}

impl Supervisor {
    /// `stop`: turns true at shutdown (no restarts after it). The receiver
    /// gets one message per task that panicked [`MAX_PANICS`] times.
    pub fn new(stop: watch::Receiver<bool>) -> (Supervisor, mpsc::UnboundedReceiver<String>) {
        let (fatal, fatal_rx) = mpsc::unbounded_channel();
        let sup = Supervisor {
            board: Arc::default(),
            fatal,
            stop,
        };
        (sup, fatal_rx)
    }

    /// The supervision of task `name`: runs `make()`'s future, and after a
    /// panic a fresh one. Ends when a run ends normally, at shutdown, or
    /// when the task gave up.
    pub fn supervise<F, Fut>(
        &self,
        name: &'static str,
        mut make: F,
    ) -> impl Future<Output = ()> + use<F, Fut>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let board = self.board.clone();
        let fatal = self.fatal.clone();
        let mut stop = self.stop.clone();
        board.set(name, TaskState::Running, false);
        async move {
            let mut recent: VecDeque<Instant> = VecDeque::new();
            loop {
                board.set(name, TaskState::Running, false);
                let error = match tokio::spawn(make()).await {
                    Ok(()) => break,
                    Err(e) if e.is_cancelled() => break,
                    Err(e) => e,
                };
                let message = panic_message(error.into_panic());
                let now = Instant::now();
                recent.push_back(now);
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > PANIC_WINDOW)
                {
                    recent.pop_front();
                }
                if recent.len() >= MAX_PANICS {
                    board.set(name, TaskState::Failed, true);
                    let why = format!(
                        "the {name} task panicked {} times within {}; last: {message}",
                        recent.len(),
                        carehook_core::retry::format_duration(PANIC_WINDOW)
                    );
                    tracing::error!(task = name, "{why}; stopping carehook");
                    let _ = fatal.send(why);
                    return;
                }
                board.set(name, TaskState::Restarting, true);
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << (recent.len() - 1).min(16))
                    .min(MAX_BACKOFF);
                tracing::error!(task = name, panic = %message, "background task panicked; restarting it in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            board.set(name, TaskState::Stopped, false);
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_task_restarts_then_gives_up() {
        let (_stop_tx, stop) = watch::channel(false);
        let (sup, mut fatal) = Supervisor::new(stop);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        // Panics on its first two runs, then works and ends normally.
        sup.supervise("flaky", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("run {n} fails");
                }
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(sup.board.states()["flaky"], TaskState::Stopped);
        assert_eq!(sup.board.panics()["flaky"], 2);
        assert!(fatal.try_recv().is_err());

        sup.supervise("broken", || async { panic!("always") }).await;
        assert_eq!(sup.board.states()["broken"], TaskState::Failed);
        assert!(!sup.board.healthy());
        let why = fatal.try_recv().unwrap();
        assert!(why.contains("broken task panicked 5 times"), "{why}");
    }

    #[tokio::test]
    async fn no_restart_after_shutdown() {
        let (stop_tx, stop) = watch::channel(false);
        let (sup, _fatal) = Supervisor::new(stop);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let task = tokio::spawn(sup.supervise("t", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { panic!("boom") }
        }));
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(runs.load(Ordering::SeqCst) <= 2);
        assert_eq!(sup.board.states()["t"], TaskState::Stopped);
    }
}
