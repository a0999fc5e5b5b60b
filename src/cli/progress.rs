//! Progress bars for rebuilds, one per projection, fed by `RebuildWatch`.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use replay::ops::{RebuildKind, RebuildProgress, RebuildReport, RebuildWatch};

pub struct Bars {
    kind: RebuildKind,
    all: MultiProgress,
    style: ProgressStyle,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars").finish_non_exhaustive()
    }
}

impl Bars {
    pub fn new(kind: RebuildKind) -> Self {
        Self {
            kind,
            all: MultiProgress::new(),
            style: ProgressStyle::with_template(
                "{prefix} {bar:40} {pos}/{len} events {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
            bars: Mutex::default(),
        }
    }

    pub fn clear(&self) {
        let _ = self.all.clear();
    }
}

impl RebuildWatch for Bars {
    fn started(&self, name: &str, target_version: u32) {
        let bar = self.all.add(ProgressBar::new(0));
        bar.set_style(self.style.clone());
        bar.set_prefix(format!("{name} v{target_version}"));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(name.to_owned(), bar);
        }
    }

    fn progress(&self, name: &str, progress: &RebuildProgress) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(name).cloned()) {
            bar.set_length(progress.total);
            bar.set_position(progress.applied);
            bar.set_message(format!(
                "{:.0} events/s, {}",
                progress.events_per_second, progress.phase
            ));
        }
    }

    fn finished(&self, report: &RebuildReport) {
        if let Some(bar) = self
            .bars
            .lock()
            .ok()
            .and_then(|mut b| b.remove(&report.name))
        {
            bar.finish_and_clear();
        }
        let line = super::print::rebuild_report(self.kind, report);
        self.all.suspend(|| println!("{line}"));
    }
}
