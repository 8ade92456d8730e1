//! Named points where tests stop the process with SIGKILL, to prove that a ceremony
//! interrupted there can be resumed or abandoned.
//!
//! The environment variable [`KILL_POINT_VAR`] names one point, such as `record-7` (right
//! after transcript record 7 is on disk) or `mid-replication-2` (inside the second copy,
//! after the member unwrapped the key and before the copy is checked and recorded). The
//! quorum actions stop at `record-<n>` too, at `after-share-file-<custodian>` (one share
//! file of a split written, the next not yet) and at `after-destroy-<token label>`
//! (retire: the objects destroyed, not yet recorded). Unset, every point is a no-op, and
//! release builds contain no kill points at all.

/// Environment variable naming the point at which to kill the process.
pub const KILL_POINT_VAR: &str = "FLEET_CEREMONY_TEST_KILL_POINT";

/// Kills this process with SIGKILL if `point` is the configured kill point. Release
/// builds leave the test hook out, so the variable has no effect on them.
pub fn kill_point(point: &str) {
    #[cfg(debug_assertions)]
    kill_if_configured(point);
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(debug_assertions)]
fn kill_if_configured(point: &str) {
    let Ok(wanted) = std::env::var(KILL_POINT_VAR) else {
        return;
    };
    if wanted != point {
        return;
    }
    tracing::warn!(point, "test kill point reached; stopping with SIGKILL");
    // SIGKILL through kill(1) keeps this crate free of unsafe code.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // kill(1) does not return once the signal is delivered; if it could not run at all,
    // abort rather than carry on past the kill point.
    std::process::abort();
}
