//! The apply journal: before an action's call is sent, its number is appended here and synced, so
//! that after a crash the actions whose call may have been carried out (sent, but their row never
//! committed) are known: a resumed apply describes those first instead of sending them again.
//!
//! It lives beside the ACTIONS output, as its lock does (`.NAME.fleet-audit.journal`), opened
//! `O_NOFOLLOW` and appended to only; its first line names the plan it is of.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The journal of an ACTIONS output.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// Action numbers whose call was (or may have been) sent, as read and as appended.
    sent: HashSet<u64>,
}

/// Where the journal of the ACTIONS output `out` is.
pub fn path_of(out: &Path) -> std::io::Result<PathBuf> {
    let lock = crate::dataset::lock::local_lock_path(out)?;
    let name = lock
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replace(".fleet-audit.lock", ".fleet-audit.journal")
        })
        .unwrap_or_default();
    Ok(lock.with_file_name(name))
}

/// What the journal at a path holds: the plan it is of and the actions sent.
pub fn read(path: &Path) -> std::io::Result<Option<(String, HashSet<u64>)>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = std::io::BufReader::new(file).lines();
    let Some(first) = lines.next().transpose()? else {
        return Ok(None);
    };
    let plan = first.strip_prefix("plan ").unwrap_or_default().to_string();
    let mut sent = HashSet::new();
    for line in lines {
        // A line cut by a crash is the last one, and its call was never sent.
        if let Some(n) = line?.strip_prefix("sent ").and_then(|n| n.parse().ok()) {
            sent.insert(n);
        }
    }
    Ok(Some((plan, sent)))
}

impl Journal {
    /// Opens the journal at `path` for the plan `plan_id`: continued when it is that plan's
    /// (`sent` read back), started afresh otherwise.
    pub fn open(path: &Path, plan_id: &str) -> std::io::Result<Journal> {
        let (sent, fresh) = match read(path)? {
            Some((p, sent)) if p == plan_id => (sent, false),
            _ => (HashSet::new(), true),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.custom_flags(libc::O_NOFOLLOW).mode(0o600);
        if fresh {
            opts.write(true).create(true).truncate(true);
        } else {
            opts.append(true);
        }
        let mut file = opts.open(path)?;
        if fresh {
            writeln!(file, "plan {plan_id}")?;
            file.sync_all()?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            sent,
        })
    }

    /// Whether action `n`'s call may have been sent by an earlier run.
    pub fn was_sent(&self, n: u64) -> bool {
        self.sent.contains(&n)
    }

    /// Records, durably, that action `n`'s call is about to be sent.
    pub fn sending(&mut self, n: u64) -> std::io::Result<()> {
        writeln!(self.file, "sent {n}")?;
        self.file.sync_data()?;
        self.sent.insert(n);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
