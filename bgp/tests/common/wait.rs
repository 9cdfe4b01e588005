//! Polling helpers: daemons converge on their own schedule.

use std::time::{Duration, Instant};

/// Polls `cond` every 100 ms until it holds; panics naming `what` after
/// `secs` seconds.
pub fn wait_until(what: &str, secs: f64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when `cond` holds at some point within `secs` seconds.
pub fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}
