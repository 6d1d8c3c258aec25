//! One writer per output. A run owns its output from before its first IoT call until it exits; a
//! second run on the same output is refused, naming the holder, before it calls or writes anything.
//!
//! - A local file or directory: an advisory `flock` on a lock file beside it (`.NAME.fleet-audit.lock`
//!   in the same folder), which the kernel releases when the process ends however it ends, so a
//!   `kill -9` never leaves a lock behind and `--resume` right after just works. The file holds the
//!   holder's identity, for the refusal message. The holder deletes it before unlocking; a locker
//!   checks, once locked, that the file it locked is still the one at the path (else it locked a
//!   deleted file, and tries again), so the deletion never lets two runs in.
//! - An S3 prefix: the object `_fleet-audit.lock` under it, created with a conditional write
//!   (`If-None-Match: *`), holding run id, host, pid, start time and the lease. The holder renews it
//!   (a write conditional on its last ETag) every quarter lease and deletes it at exit. A lock not
//!   renewed for a whole lease (by the store's clock) belonged to a run that died, and so does one
//!   whose holder ran on this machine (same host, boot and pid namespace) and whose process is gone:
//!   the next run takes it over with a conditional write, saying so. A holder whose renewal finds another's lock has
//!   lost the output; since every manifest write is conditional too, it can never overwrite the new
//!   owner's manifest.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::s3::{RemoteDir, RemoteError};

/// Name of the lock object of an object-store dataset, under its prefix.
pub(crate) use super::s3::LOCK;

/// Who holds an output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// When the run took the output, epoch milliseconds.
    pub started_ms: i64,
    /// How long the lock stays valid without renewal (object stores), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<f64>,
    /// When the holder last renewed the lock, epoch milliseconds (every renewal writes new bytes, so
    /// a new ETag: a write conditional on an older one fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_ms: Option<i64>,
    /// The boot and pid namespace of the holder's process (`BOOT_ID:PIDNS`): where its `pid` means
    /// something. A run on the same machine can tell at once that the holder's process is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// This process's boot id and pid namespace, where `/proc` tells them.
fn machine() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}:{}", boot.trim(), ns.display()))
}

impl Holder {
    /// This process, running `run_id`.
    pub fn me(run_id: &str) -> Holder {
        Holder {
            run_id: run_id.to_string(),
            host: host_name(),
            pid: std::process::id(),
            started_ms: crate::time::wall_ms(),
            lease_s: None,
            renewed_ms: None,
            machine: machine(),
        }
    }

    /// Whether this holder's process is known to be gone: it ran on this machine (same host, boot
    /// and pid namespace) and no process has its pid any more (killed, crashed, OOM-killed).
    fn is_gone(&self) -> bool {
        self.machine.is_some()
            && self.machine == machine()
            && self.host == host_name()
            && self.pid != std::process::id()
            && !Path::new("/proc").join(self.pid.to_string()).exists()
    }

    /// `run R (pid P on host H, since T)`.
    pub fn describe(&self) -> String {
        format!(
            "run {} (pid {} on host {}, since {})",
            self.run_id,
            self.pid,
            self.host,
            crate::time::iso_utc(self.started_ms, false)
        )
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("holder serializes")
    }

    /// The holder a lock's content names; an unreadable one (being written) is described as such.
    fn describe_content(bytes: &[u8]) -> String {
        serde_json::from_slice::<Holder>(bytes)
            .map(|h| h.describe())
            .unwrap_or_else(|_| "another run (its lock does not say which)".to_string())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Why an output could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error("{out} is being written by {holder}")]
    Held { out: String, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something this tool did not make (a symbolic link, a hard link, a folder) in the place of
    /// the lock file.
    #[error("{path} is a link or not a lone file where this tool keeps its lock: it never writes through a link it did not make; remove it")]
    Planted { path: PathBuf },
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// An output held by this process until [`OutputLock::release`] (or, locally, the process's end).
pub(crate) struct OutputLock {
    kind: Kind,
}

enum Kind {
    Local(LocalLock),
    Remote {
        dir: Arc<RemoteDir>,
        lease: Arc<Lease>,
        renewer: tokio::task::JoinHandle<()>,
    },
}

/// A held lock file: deleted, then unlocked, when dropped (however the run ends, short of a kill).
struct LocalLock {
    file: Option<File>,
    path: PathBuf,
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        // Only the file this lock holds: one another run made at the path (after someone removed
        // this one) is that run's lock.
        if self.file.as_ref().is_some_and(|f| still_at(f, &self.path)) {
            let _ = std::fs::remove_file(&self.path);
        }
        drop(self.file.take());
    }
}

/// A refused open of the lock file: a link in its place is named as such.
fn planted(path: &Path, e: std::io::Error) -> LockError {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return LockError::Planted {
            path: path.to_path_buf(),
        };
    }
    LockError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Whether `file` is a regular file with one name (no hard link shares it).
#[cfg(unix)]
fn is_lone_file(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1)
}

#[cfg(not(unix))]
fn is_lone_file(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.file_type().is_file())
}

/// Whether `file` is still the file at `path` (not deleted or replaced since it was opened).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// The state of an object-store lease shared with its renewer.
struct Lease {
    /// The ETag of the lock as last written by this process.
    e_tag: Mutex<String>,
    lost: AtomicBool,
}

/// Whether the lock file of the local output `out` is still held by run `run_id`: `Err` describes
/// what is there instead (nothing, another run's lock, something unreadable). Read without following
/// a link.
pub(crate) fn check_local_holder(out: &Path, run_id: &str) -> Result<(), String> {
    let path = local_lock_path(out).map_err(|e| e.to_string())?;
    let mut content = Vec::new();
    match super::files::open_no_follow(&path).and_then(|mut f| f.read_to_end(&mut content)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} is gone", path.display()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(_) => match serde_json::from_slice::<Holder>(&content) {
            Ok(h) if h.run_id == run_id => Ok(()),
            Ok(h) => Err(format!("it now names {}", h.describe())),
            Err(_) => Err(format!("{} no longer names this run", path.display())),
        },
    }
}

/// The run writing the local output `out` now, described (`run R (pid P on host H, since T)`): its
/// lock file is there (a holder deletes it when it ends) and names a process that is alive on this
/// machine, or one on another machine (a shared folder), which cannot be told from here. `None`: no
/// run is writing it (no lock file, or its holder's process is gone: killed, crashed).
/// Read without following a link, and without locking (a report must never hold up a run).
pub(crate) fn local_writer(out: &Path) -> Option<String> {
    let path = local_lock_path(out).ok()?;
    let mut content = Vec::new();
    super::files::open_no_follow(&path)
        .and_then(|mut f| f.read_to_end(&mut content))
        .ok()?;
    let h = serde_json::from_slice::<Holder>(&content).ok()?;
    if h.is_gone() || h.pid == std::process::id() {
        return None;
    }
    let here = h.machine.is_some() && h.machine == machine() && h.host == host_name();
    Some(if here {
        h.describe()
    } else {
        format!(
            "{} on another machine (if it is still running)",
            h.describe()
        )
    })
}

/// The lock file of a local output: `.NAME.fleet-audit.lock` in the folder that holds it, both taken
/// from the output's real path (every symbolic link and `..` resolved), so that every spelling of one
/// output (`race`, `./race/`, `sub/../race`, a link to it) is one lock.
pub(crate) fn local_lock_path(out: &Path) -> Result<PathBuf, std::io::Error> {
    let real = real_path(out)?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = real
        .parent()
        .map_or_else(|| real.clone(), Path::to_path_buf);
    Ok(parent.join(format!(".{name}.fleet-audit.lock")))
}

/// `p` with every link and `..` resolved: its canonical path when it exists, else its nearest
/// existing ancestor's canonical path followed by the rest (folders the run will create).
fn real_path(p: &Path) -> Result<PathBuf, std::io::Error> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c);
    }
    let abs = std::path::absolute(p)?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            break;
        };
        rest.push(name.to_os_string());
        existing = parent;
    }
    let mut real = std::fs::canonicalize(existing)?;
    for name in rest.iter().rev() {
        if name == ".." {
            real.pop();
        } else if name != "." {
            real.push(name);
        }
    }
    Ok(real)
}

impl OutputLock {
    /// Takes the local output `out` (a file or a directory, existing or not) for `holder`.
    pub fn local(out: &Path, holder: &Holder) -> Result<OutputLock, LockError> {
        let path = local_lock_path(out).map_err(|source| LockError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = loop {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            // Never through a link planted at the lock's name (ELOOP), and only into a file that
            // is this lock alone: a hard link to another file would have it truncated.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
            let mut file = options.open(&path).map_err(|e| planted(&path, e))?;
            if !is_lone_file(&file) {
                return Err(LockError::Planted { path: path.clone() });
            }
            match file.try_lock() {
                // Locked the file at the path, not one its holder deleted meanwhile.
                Ok(()) if still_at(&file, &path) => break file,
                Ok(()) => continue,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut content = Vec::new();
                    let _ = file.read_to_end(&mut content);
                    return Err(LockError::Held {
                        out: out.display().to_string(),
                        holder: Holder::describe_content(&content),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        };
        let written = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(&holder.to_json()))
            .and_then(|_| file.flush());
        let lock = LocalLock {
            file: Some(file),
            path: path.clone(),
        };
        written.map_err(io)?;
        Ok(OutputLock {
            kind: Kind::Local(lock),
        })
    }

    /// Takes the object-store output `dir` for `holder` with a lease of `lease` (renewed every quarter
    /// of it while the lock lives). Returns the lock and, when it took over a lapsed lock, a note
    /// saying whose.
    pub async fn remote(
        dir: Arc<RemoteDir>,
        holder: &Holder,
        lease: Duration,
    ) -> Result<(OutputLock, Option<String>), LockError> {
        let mut mine = holder.clone();
        mine.lease_s = Some(lease.as_secs_f64());
        mine.renewed_ms = Some(crate::time::wall_ms());
        let body = mine.to_json();
        let mut note = None;
        let e_tag = match dir.put_if(LOCK, body.clone(), None).await? {
            Some(t) => t,
            None => {
                let held = |content: &[u8]| LockError::Held {
                    out: dir.url().to_string(),
                    holder: Holder::describe_content(content),
                };
                let Some(current) = dir.get_versioned(LOCK).await? else {
                    // Released between our write and our read: try once more.
                    return match dir.put_if(LOCK, body.clone(), None).await? {
                        Some(t) => Ok((OutputLock::renewing(dir, t, mine, lease), None)),
                        None => Err(held(b"")),
                    };
                };
                let theirs: Option<Holder> = serde_json::from_slice(&current.bytes).ok();
                // Our own create, retried by the client after a lost answer.
                if theirs.as_ref().is_some_and(|h| h == &mine) {
                    current.e_tag.clone().unwrap_or_default()
                } else {
                    // A lease is read from a shared bucket: any value, at most a week.
                    let their_lease = theirs
                        .as_ref()
                        .and_then(|h| h.lease_s)
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                        .map_or(lease, |d| d.min(Duration::from_secs(7 * 86_400)));
                    // Judged by the store's clock, which stamped the lock's modification time.
                    let store_now = dir
                        .store_now_ms()
                        .await
                        .unwrap_or_else(|_| crate::time::wall_ms());
                    let idle_ms = store_now - current.last_modified_ms;
                    let lapsed = idle_ms >= their_lease.as_millis() as i64;
                    let gone = theirs.as_ref().is_some_and(Holder::is_gone);
                    let (Some(seen), true) = (current.e_tag.as_deref(), lapsed || gone) else {
                        return Err(held(&current.bytes));
                    };
                    let why = if gone {
                        "its process is gone".to_string()
                    } else {
                        format!(
                            "not renewed for {:.0} s (its lease is {:.0} s)",
                            idle_ms as f64 / 1000.0,
                            their_lease.as_secs_f64()
                        )
                    };
                    match dir.put_if(LOCK, body.clone(), Some(seen)).await? {
                        Some(t) => {
                            note = Some(format!(
                                "{}: took over the lock of {}: {why}",
                                dir.url(),
                                Holder::describe_content(&current.bytes),
                            ));
                            t
                        }
                        None => {
                            // Someone renewed or took it in the meantime.
                            let now = dir.get_versioned(LOCK).await?;
                            return Err(held(now.as_ref().map_or(&b""[..], |v| &v.bytes)));
                        }
                    }
                }
            }
        };
        Ok((OutputLock::renewing(dir, e_tag, mine, lease), note))
    }

    fn renewing(dir: Arc<RemoteDir>, e_tag: String, mut holder: Holder, lease: Duration) -> Self {
        let state = Arc::new(Lease {
            e_tag: Mutex::new(e_tag),
            lost: AtomicBool::new(false),
        });
        // The writer refuses to upload or commit once the lease is lost or nearly lapsed.
        dir.lease_renewed(lease);
        let renewer = {
            let (dir, state) = (dir.clone(), state.clone());
            tokio::spawn(async move {
                let every = (lease / 4).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    let last = state.e_tag.lock().expect("lease lock").clone();
                    holder.renewed_ms = Some(crate::time::wall_ms());
                    // A renewal that hangs must not outlive the next one's turn.
                    let renewal = dir.put_if(LOCK, holder.to_json(), Some(&last));
                    let renewed = match tokio::time::timeout(every, renewal).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!("renewing the output's lock timed out");
                            continue;
                        }
                    };
                    match renewed {
                        Ok(Some(t)) => {
                            *state.e_tag.lock().expect("lease lock") = t;
                            dir.lease_renewed(lease);
                        }
                        Ok(None) => {
                            state.lost.store(true, Ordering::SeqCst);
                            dir.lease_lost();
                            eprintln!(
                                "fleet-audit: error: {}: another run took over this run's lock (it was not renewed within its lease); this run can no longer commit",
                                dir.url()
                            );
                            return;
                        }
                        // A store briefly unreachable: the next renewal tries again (the lease
                        // outlasts several renewals).
                        Err(e) => tracing::warn!("cannot renew the output's lock: {e}"),
                    }
                }
            })
        };
        OutputLock {
            kind: Kind::Remote {
                dir,
                lease: state,
                renewer,
            },
        }
    }

    /// Whether another run took the output over (object stores; never locally).
    #[cfg(test)]
    pub(crate) fn lost(&self) -> bool {
        match &self.kind {
            Kind::Local(_) => false,
            Kind::Remote { lease, .. } => lease.lost.load(Ordering::SeqCst),
        }
    }

    /// Gives the output up: the local lock is unlocked; the lock object is deleted if it is still
    /// this run's.
    pub async fn release(self) {
        match self.kind {
            Kind::Local(lock) => drop(lock),
            Kind::Remote {
                dir,
                lease,
                renewer,
            } => {
                renewer.abort();
                let _ = renewer.await;
                if lease.lost.load(Ordering::SeqCst) {
                    return;
                }
                let mine = lease.e_tag.lock().expect("lease lock").clone();
                match dir.get_versioned(LOCK).await {
                    Ok(Some(v)) if v.e_tag.as_deref() == Some(mine.as_str()) => {
                        if let Err(e) = dir.delete(LOCK).await {
                            tracing::warn!("cannot delete the output's lock: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot read the output's lock to release it: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_local_lock_is_refused_naming_the_holder_and_freed_on_release() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("audit");
        let first = Holder {
            run_id: "1764-abc".into(),
            host: "node-1".into(),
            pid: 4242,
            started_ms: 1_764_400_000_000,
            lease_s: None,
            renewed_ms: None,
            machine: None,
        };
        let lock = OutputLock::local(&out, &first).unwrap();
        assert!(d.path().join(".audit.fleet-audit.lock").is_file());
        assert!(!out.exists(), "the lock lies beside the output");
        // The same output by another spelling is the same lock.
        let other = d.path().join(".").join("audit/");
        let err = OutputLock::local(&other, &Holder::me("second"))
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is being written by run 1764-abc (pid 4242 on host node-1, since 2025-11-29T07:06:40Z)",
                other.display()
            )
        );
        let file_out = d.path().join("one.parquet");
        let _file_lock = OutputLock::local(&file_out, &Holder::me("f")).unwrap();
        assert!(OutputLock::local(&file_out, &Holder::me("g")).is_err());
        futures::executor::block_on(lock.release());
        assert!(
            !d.path().join(".audit.fleet-audit.lock").exists(),
            "a released lock leaves no file"
        );
        let again = OutputLock::local(&out, &Holder::me("third")).unwrap();
        assert!(!again.lost());
    }

    #[test]
    fn only_a_holder_on_this_machine_without_its_process_is_gone() {
        let me = Holder::me("r");
        assert!(!me.is_gone(), "this process runs");
        let mut dead = me.clone();
        // Past the largest pid Linux hands out.
        dead.pid = 4_194_304 + 7;
        assert_eq!(dead.is_gone(), me.machine.is_some());
        let mut elsewhere = dead.clone();
        elsewhere.host = "another-host".into();
        assert!(!elsewhere.is_gone());
        let mut unknown = dead;
        unknown.machine = None;
        assert!(!unknown.is_gone());
    }

    #[test]
    fn lock_paths_sit_beside_the_output_at_its_real_path() {
        let here = std::fs::canonicalize(".").unwrap();
        assert_eq!(
            local_lock_path(Path::new("a/b/out.parquet")).unwrap(),
            here.join("a/b/.out.parquet.fleet-audit.lock")
        );
        assert_eq!(
            local_lock_path(Path::new("out/")).unwrap(),
            here.join(".out.fleet-audit.lock")
        );
        assert_eq!(
            local_lock_path(Path::new(".")).unwrap(),
            here.parent().unwrap().join(format!(
                ".{}.fleet-audit.lock",
                here.file_name().unwrap().to_string_lossy()
            ))
        );
        // Every spelling of one directory, links included, is one lock.
        let d = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(real.join("race")).unwrap();
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(real.join("race"), real.join("racelink")).unwrap();
        std::os::unix::fs::symlink(&real, real.join("sub/up")).unwrap();
        let want = real.join(".race.fleet-audit.lock");
        for spelling in [
            "race",
            "race/",
            "./race",
            "sub/../race",
            "racelink",
            "racelink/",
            "sub/up/race",
        ] {
            assert_eq!(
                local_lock_path(&real.join(spelling)).unwrap(),
                want,
                "{spelling}"
            );
        }
        // A folder still to be made: beneath the real path of its nearest existing ancestor.
        assert_eq!(
            local_lock_path(&real.join("sub/up/new/out")).unwrap(),
            real.join("new/.out.fleet-audit.lock")
        );
    }

    #[test]
    fn a_link_planted_at_the_lock_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        let out = d.path().join("audit");
        let lock = local_lock_path(&out).unwrap();
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let e = OutputLock::local(&out, &Holder::me("r1"))
            .err()
            .expect("refused");
        assert!(matches!(e, LockError::Planted { .. }), "{e}");
        assert!(e.to_string().contains("never writes through a link"), "{e}");
        std::fs::remove_file(&lock).unwrap();
        // A hard link to another file in its place is refused too.
        std::fs::hard_link(&victim, &lock).unwrap();
        let e = OutputLock::local(&out, &Holder::me("r1"))
            .err()
            .expect("refused");
        assert!(matches!(e, LockError::Planted { .. }), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
