//! The progress bar drawn on stderr while a load run goes (hidden when stderr is not a
//! terminal): requests finished out of the count bound, failures, and the running rate.

use super::request::RequestRecord;
use super::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Bar {
    bar: ProgressBar,
    failed: AtomicU64,
}

impl Bar {
    pub fn new(max_requests: u64) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(max_requests), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} requests {per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Bar { bar, failed: AtomicU64::new(0) }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn finished(&self, record: &RequestRecord) {
        if !record.ok() {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{failed} failed"));
        }
        self.bar.inc(1);
    }
}
