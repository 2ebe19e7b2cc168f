//! This process's memory figures, for the tests that bound memory.

/// Reads this process's resident-set figures from `/proc/self/status`, in
/// KiB: `(VmRSS, VmHWM)`, the current and the peak. `None` where the file
/// or the fields are missing (not Linux).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
/// Resets this process's peak RSS (`VmHWM`) to its current RSS, by writing
/// `5` to `/proc/self/clear_refs`. Returns whether that worked (it needs
/// Linux 4.0 and may be refused in some sandboxes).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}
