//! What a run cost the whole process besides wall time, from `/proc`: CPU
//! time (all threads, the mock's included, so common to every subject) and
//! context switches (threads alive at both ends of the run). Printed as a
//! diagnostic: wall time is what the ratios use, but these say why, and move
//! much less when other tenants load the machine.

use std::fs;

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// user + system CPU time, in clock ticks (1/100 s on Linux).
    pub cpu_ticks: u64,
    /// Voluntary + involuntary context switches of the live threads.
    pub switches: u64,
}

impl Usage {
    pub fn now() -> Usage {
        Usage {
            cpu_ticks: cpu_ticks().unwrap_or(0),
            switches: switches(),
        }
    }

    pub fn since(self, before: Usage) -> Usage {
        Usage {
            cpu_ticks: self.cpu_ticks.saturating_sub(before.cpu_ticks),
            switches: self.switches.saturating_sub(before.switches),
        }
    }

    pub fn add(&mut self, other: Usage) {
        self.cpu_ticks += other.cpu_ticks;
        self.switches += other.switches;
    }
}

fn cpu_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn switches() -> u64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}
