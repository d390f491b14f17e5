//! The demo's live timeline: every component of the demo (scenario, alert watcher, notification
//! sinks, gateway and analyzer watchers) reports what happened with the time since the demo
//! started; one task prints each event as it comes and appends it as a JSON line to
//! `<state-dir>/timeline.jsonl`, which the tests (and anyone scripting the demo) read.

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the demo started.
    pub t: f64,
    /// `stack`, `fault`, `alert`, `notification`, `remediation`, `gateway`, `report`, `info`.
    pub kind: &'static str,
    pub text: String,
    /// Machine-readable details (alert name, state, labels, receiver, ...).
    pub detail: Value,
}

/// What the printer receives: an event, or plain text printed in order with the events.
enum Line {
    Event(Event),
    Raw(String),
}

/// Cheap to clone; every task holds one.
#[derive(Clone)]
pub struct Timeline {
    t0: Instant,
    tx: mpsc::UnboundedSender<Line>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Timeline {
    /// Starts the printer; events go to stdout and to `jsonl`.
    pub fn start(
        t0: Instant,
        jsonl: &Path,
    ) -> std::io::Result<(Timeline, tokio::task::JoinHandle<()>)> {
        let mut file =
            std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(jsonl)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let kept = events.clone();
        let printer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let event = match line {
                    Line::Raw(text) => {
                        println!("{text}");
                        continue;
                    }
                    Line::Event(event) => event,
                };
                println!("[{:>7.1}s] {:<12} {}", event.t, event.kind, event.text);
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(file, "{line}");
                    let _ = file.flush();
                }
                kept.lock().push(event);
            }
        });
        Ok((Timeline { t0, tx, events }, printer))
    }

    /// When the demo started.
    pub fn started(&self) -> Instant {
        self.t0
    }

    /// Prints `text` as it is, in order with the events (not in timeline.jsonl).
    pub fn raw(&self, text: String) {
        let _ = self.tx.send(Line::Raw(text));
    }

    pub fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    pub fn emit(&self, kind: &'static str, text: impl Into<String>, detail: Value) {
        let _ =
            self.tx.send(Line::Event(Event { t: self.elapsed(), kind, text: text.into(), detail }));
    }

    pub fn info(&self, text: impl Into<String>) {
        self.emit("info", text, json!({}));
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }
}
