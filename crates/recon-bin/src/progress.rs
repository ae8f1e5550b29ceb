//! A progress bar for sweeps and replays in a terminal: objects per second,
//! pages, retries and drift found. None when stdout is not a terminal or
//! with `--json`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use recon_core::{BudgetStats, Progress};

/// A running progress display; stop it with [`Bar::finish`].
pub struct Bar {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Start a bar for `label` if stdout is a terminal and not `json`.
    pub fn start(
        label: &str,
        json: bool,
        progress: &Arc<Progress>,
        stats: &Arc<BudgetStats>,
    ) -> Bar {
        if json || !std::io::stdout().is_terminal() {
            return Bar {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let (b, p, s) = (bar.clone(), progress.clone(), stats.clone());
        let retries0 = stats.retries.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let objects = p.objects.load(Ordering::Relaxed);
                let rate = objects as f64 / started.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!(
                    "{objects} objects ({rate:.0}/s), {} pages, {} retries, {} drift",
                    p.pages.load(Ordering::Relaxed),
                    s.retries.load(Ordering::Relaxed) - retries0,
                    p.drift.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Bar {
            bar: Some(bar),
            task: Some(task),
        }
    }

    /// Remove the bar.
    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
