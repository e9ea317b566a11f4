//! Measuring a phase run in a child process: its JSON report, its CPU time (user + system, from
//! `getrusage(RUSAGE_CHILDREN)` around the wait) and the bytes it caused to be written to storage
//! (`write_bytes` of `/proc/self/io`, to which Linux adds each reaped child's count). Both are taken
//! by the parent, so they work for any binary, including an older build of this harness.

use std::path::Path;
use std::process::Command;

/// What one child run reported and cost.
pub struct ChildRun {
    /// The JSON object the child printed on stdout.
    pub report: serde_json::Value,
    /// User + system CPU seconds of the whole child process (start-up included).
    pub cpu_seconds: f64,
    /// Bytes the child dirtied for writing to storage (page cache included: counted when dirtied).
    pub write_bytes: u64,
    /// Of those, bytes of files truncated or deleted before writeback.
    pub cancelled_write_bytes: u64,
}

/// Runs `exe args…` to completion; its stdout must be one JSON object.
pub fn run(exe: &Path, args: &[&str]) -> Result<ChildRun, String> {
    let (cpu0, io0) = (children_cpu_seconds(), self_io());
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let (cpu1, io1) = (children_cpu_seconds(), self_io());
    if !out.status.success() {
        return Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{args:?}: bad output: {e}"))?;
    Ok(ChildRun {
        report,
        cpu_seconds: cpu1 - cpu0,
        write_bytes: io1.write_bytes.saturating_sub(io0.write_bytes),
        cancelled_write_bytes: io1
            .cancelled_write_bytes
            .saturating_sub(io0.cancelled_write_bytes),
    })
}

/// This process's user + system CPU seconds so far (all threads).
pub fn self_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` only writes the struct it is given; a zeroed `rusage` is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[derive(Default)]
struct Io {
    write_bytes: u64,
    cancelled_write_bytes: u64,
}

fn self_io() -> Io {
    let mut io = Io::default();
    let Ok(text) = std::fs::read_to_string("/proc/self/io") else {
        return io;
    };
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().parse().unwrap_or(0);
        match name {
            "write_bytes" => io.write_bytes = value,
            "cancelled_write_bytes" => io.cancelled_write_bytes = value,
            _ => {}
        }
    }
    io
}

/// This process's peak resident set size (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
