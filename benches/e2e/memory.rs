//! Section 4: resident memory while long scans stream through.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::common::*;

pub(crate) struct RssRun {
    pub(crate) what: String,
    pub(crate) rows: u64,
    pub(crate) wall: Duration,
    pub(crate) before: u64,
    pub(crate) at: [u64; 4],
    pub(crate) peak_sampled: u64,
    pub(crate) hwm: Option<u64>,
}

/// Streams `SELECT <every value column>` through and samples RSS every 100 ms.
pub(crate) async fn rss_scan(what: String, ctx: &SessionContext, expected: u64) -> RssRun {
    let reset = reset_peak_rss();
    let before = rss_bytes();
    let rows_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let rows_done = rows_done.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                samples.push((rows_done.load(Ordering::SeqCst), rss_bytes()));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let t = Instant::now();
    let mut stream = ctx
        .sql(SELECT_ALL_VALUES)
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let mut n = 0u64;
    let mut next_log = expected / 10;
    while let Some(b) = stream.next().await {
        n += b.expect("scan").num_rows() as u64;
        rows_done.store(n, Ordering::SeqCst);
        if n >= next_log {
            eprintln!(
                "  {what}: {n} rows, rss {} after {:.1?}",
                mib(rss_bytes()),
                t.elapsed()
            );
            next_log += expected / 10;
        }
    }
    let wall = t.elapsed();
    drop(stream);
    let end_rss = rss_bytes();
    stop.store(true, Ordering::SeqCst);
    let mut samples = sampler.join().unwrap();
    samples.push((n, end_rss));
    assert_eq!(n, expected, "{what}: rows");
    let at_fraction = |f: f64| {
        let want = (expected as f64 * f) as u64;
        samples
            .iter()
            .find(|s| s.0 >= want)
            .map_or(end_rss, |s| s.1)
    };
    RssRun {
        what,
        rows: n,
        wall,
        before,
        at: [
            at_fraction(0.1),
            at_fraction(0.5),
            at_fraction(0.9),
            at_fraction(1.0),
        ],
        peak_sampled: samples.iter().map(|s| s.1).max().unwrap_or(0),
        hwm: reset.then(peak_rss_bytes),
    }
}

pub(crate) fn rss_table(rows: &[RssRun]) -> String {
    let mut out = String::from(
        "4. RSS of this process while `SELECT id, user, amount, active, ts, note FROM t` streams through (sampled every 100 ms)\n",
    );
    writeln!(
        out,
        "  {:<28} {:>10} {:>9} {:>10} | {:>9} {:>9} {:>9} {:>9} | {:>12} {:>10}",
        "", "rows", "wall", "rows/s", "10%", "50%", "90%", "100%", "peak sampled", "VmHWM"
    )
    .unwrap();
    for r in rows {
        writeln!(
            out,
            "  {:<28} {:>10} {:>9.1?} {:>10.0} | {:>9} {:>9} {:>9} {:>9} | {:>12} {:>10}",
            r.what,
            r.rows,
            r.wall,
            r.rows as f64 / r.wall.as_secs_f64(),
            mib(r.at[0]),
            mib(r.at[1]),
            mib(r.at[2]),
            mib(r.at[3]),
            mib(r.peak_sampled),
            r.hwm.map_or("n/a".into(), mib),
        )
        .unwrap();
        writeln!(out, "  {:<28} RSS before the scan: {}", "", mib(r.before)).unwrap();
    }
    out
}
