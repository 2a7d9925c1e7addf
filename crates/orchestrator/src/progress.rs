//! The live display of a sweep on stderr: one bar per running trial (step,
//! loss) under an overall bar of finished trials with an ETA. Drawn only
//! when stderr is a terminal; otherwise every note goes to the log.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub struct ProgressDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
    visible: bool,
}

impl ProgressDisplay {
    /// `total` trials, `done` of them already finished.
    pub fn new(total: u64, done: u64, enabled: bool) -> Self {
        let visible = enabled && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} trials  {msg}  elapsed {elapsed}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("sweep");
        overall.set_position(done);
        overall.reset_eta();
        if visible {
            overall.enable_steady_tick(Duration::from_millis(500));
        }
        Self {
            multi,
            overall,
            visible,
        }
    }

    /// A bar for a trial that just started (`steps`: its step budget, when
    /// the spec caps it with max_steps).
    pub fn trial(&self, label: &str, steps: Option<u64>) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::no_length());
        let template = if steps.is_some() {
            "  {prefix:<42} [{bar:24}] {pos}/{len} steps  {msg}"
        } else {
            "  {prefix:<42} {spinner} step {pos}  {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        if let Some(n) = steps {
            bar.set_length(n);
        }
        bar.set_prefix(label.to_string());
        bar
    }

    /// A trial ended: its bar goes, the overall bar moves.
    pub fn trial_done(&self, bar: &ProgressBar, finished: bool) {
        bar.finish_and_clear();
        self.multi.remove(bar);
        if finished {
            self.overall.inc(1);
        }
    }

    pub fn set_summary(&self, msg: String) {
        self.overall.set_message(msg);
    }

    /// A line above the bars (or a log line when they are not drawn).
    pub fn note(&self, msg: &str) {
        if self.visible {
            let _ = self.multi.println(msg);
        } else {
            tracing::info!("{msg}");
        }
    }

    /// Takes the bars off the terminal while a question is asked there.
    pub fn hide(&self) {
        if self.visible {
            let _ = self.multi.clear();
            self.multi.set_draw_target(ProgressDrawTarget::hidden());
        }
    }

    /// Draws the bars again after [`hide`](Self::hide).
    pub fn show(&self) {
        if self.visible {
            self.multi.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}
