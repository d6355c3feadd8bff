//! The shell's progress bar for long bounded scans: offsets read of those planned, rate and
//! ETA on stderr, drawn from [`scan_progress`](crate::observe::scan_progress) once a scan has
//! run for a second, and cleared the moment the scans end (before the result is printed).
//! Off with `-q`, and when stdout or stderr is not a terminal, so piped output stays exactly
//! the query's.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::observe::{ScanProgress, scan_progress, when_scans_done};

/// How often the bar looks at the scans.
const TICK: Duration = Duration::from_millis(200);
/// Scans shorter than this never show a bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// The bar on screen, if any: shared by the ticker and the scans-done hook.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether the shell should draw a bar.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// Draws the bar while bounded scans run, until the process ends.
pub fn spawn() {
    when_scans_done(clear);
    tokio::spawn(async move {
        let mut since: Option<Instant> = None;
        loop {
            tokio::time::sleep(TICK).await;
            let now = scan_progress();
            if now.streams == 0 || now.total == 0 {
                since = None;
                clear();
                continue;
            }
            let started = *since.get_or_insert_with(Instant::now);
            if started.elapsed() < SHOW_AFTER {
                continue;
            }
            let mut bar = BAR.lock().unwrap_or_else(|p| p.into_inner());
            let bar = bar.get_or_insert_with(new_bar);
            bar.set_message(describe(now, started.elapsed()));
            bar.tick();
        }
    });
}

fn clear() {
    if let Some(bar) = BAR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bar.finish_and_clear();
    }
}

fn new_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// `1.2M of 3.0M messages read (40%), 850k/s, about 2s left`.
fn describe(p: ScanProgress, elapsed: Duration) -> String {
    let rate = p.read as f64 / elapsed.as_secs_f64().max(0.001);
    let percent = p.read as f64 * 100.0 / p.total.max(1) as f64;
    let left = p.total.saturating_sub(p.read) as f64;
    let eta = if left == 0.0 {
        "finishing".to_string()
    } else if rate > 0.0 {
        format!("about {} left", seconds(left / rate))
    } else {
        "waiting for the brokers".to_string()
    };
    format!(
        "{} of {} messages read ({percent:.0}%), {}/s, {eta}",
        count(p.read as f64),
        count(p.total as f64),
        count(rate)
    )
}

fn count(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.1}G", n / 1e9),
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e3 => format!("{:.0}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn seconds(s: f64) -> String {
    match s {
        s if s >= 3600.0 => format!("{:.0}h{:02.0}m", (s / 3600.0).floor(), (s % 3600.0) / 60.0),
        s if s >= 60.0 => format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        s => format!("{:.0}s", s.ceil().max(1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_was_read_the_rate_and_the_time_left() {
        let p = ScanProgress {
            streams: 3,
            read: 1_200_000,
            total: 3_000_000,
        };
        assert_eq!(
            describe(p, Duration::from_secs(2)),
            "1.2M of 3.0M messages read (40%), 600k/s, about 3s left"
        );
        let stuck = ScanProgress { read: 0, ..p };
        assert!(describe(stuck, Duration::from_secs(2)).ends_with("waiting for the brokers"));
        assert_eq!(seconds(3725.0), "1h02m");
        assert_eq!(seconds(75.0), "1m15s");
    }
}
