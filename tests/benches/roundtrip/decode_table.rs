//! The decode benchmark's results, for the one combined table `.ci/bench`
//! prints: read from the table `qmp-proto/benches/decode.rs` printed in the
//! same run (its columns are found by their headers).

pub struct DecodeRow {
    pub capture: String,
    /// qmp-proto's messages/s over the baseline's (higher is better).
    pub ratio: f64,
    /// The least acceptable ratio.
    pub goal: f64,
}

/// The rows of the decode table in `log`, the output of
/// `cargo bench -p qmp-proto --bench decode`.
pub fn parse(log: &str) -> Result<Vec<DecodeRow>, String> {
    let mut lines = log.lines().map(str::trim);
    let header = lines
        .by_ref()
        .find(|l| l.starts_with("| capture |"))
        .ok_or("no decode table in the log")?;
    let header = cells(header);
    let column = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .ok_or(format!("no column {name:?} in the decode table"))
    };
    let (capture, ratio, goal) = (column("capture")?, column("ratio")?, column("goal")?);
    let number = |cell: &str| {
        cell.trim_matches('*')
            .parse::<f64>()
            .map_err(|e| format!("decode table: {cell:?}: {e}"))
    };
    let mut rows = Vec::new();
    for line in lines.skip(1) {
        if !line.starts_with('|') {
            break;
        }
        let cells = cells(line);
        rows.push(DecodeRow {
            capture: cells[capture].clone(),
            ratio: number(&cells[ratio])?,
            goal: number(&cells[goal])?,
        });
    }
    Ok(rows)
}

fn cells(line: &str) -> Vec<String> {
    let line = line.trim().trim_start_matches('|').trim_end_matches('|');
    line.split('|').map(|c| c.trim().to_string()).collect()
}
