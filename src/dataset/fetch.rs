//! Fetching a dataset in an object store (`s3://bucket/prefix/`) for the local readers: its committed
//! files (what its manifest lists, each checked against its recorded digest) copied into a temporary
//! directory under their relative paths, one file in memory at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{audits_of, incomplete_of, DatasetError, Incomplete};
use super::s3::RemoteDir;
use super::Manifest;

/// The committed files of an object-store dataset, fetched.
pub(crate) struct Fetched {
    /// A temporary directory holding them under their relative paths (removed when dropped).
    pub dir: tempfile::TempDir,
    /// Part files under the prefix that its manifest does not list (not fetched).
    pub ignored: Vec<String>,
    /// Why the files are not the last audit's (it is incomplete: the one before was fetched).
    pub note: Option<String>,
    /// The audit fetched is incomplete: how far it got.
    pub incomplete: Option<Incomplete>,
}

/// Whether the manifest `m` lists `relative` among its parts.
fn listed_in(m: Option<&Manifest>, relative: &str) -> bool {
    m.is_some_and(|m| m.all_parts().any(|p| p.file == relative))
}

/// An error of the object store at `url`.
fn remote_error(url: &str, reason: String) -> DatasetError {
    DatasetError::Remote {
        url: url.to_string(),
        reason,
    }
}

/// Fetches the committed files of a dataset in an object store (`s3://bucket/prefix/`, reached with the
/// AWS configuration of `client`) into a temporary directory, keeping their relative paths: the
/// manifest's parts (the latest complete audit's, or with `every_audit` all of them, the manifest
/// beside them), or without a manifest every part file. One file is in memory at a time.
pub(crate) async fn fetch_remote(
    url: &str,
    client: &crate::aws::client::ClientSettings,
    every_audit: bool,
) -> Result<Fetched, DatasetError> {
    use super::{Kind, OutputDir};
    let remote_err = |reason: String| remote_error(url, reason);
    let remote = super::Remote::parse(url).map_err(remote_err)?;
    let dir = remote
        .connect_as(client, None)
        .await
        .map_err(|e| remote_err(e.reason()))?;
    let target = OutputDir::Remote(dir.clone());
    // A manifest is checked as it is parsed: its parts are this tool's relative names, so joining
    // them to the temporary folder never reaches outside it.
    let manifest = target.load_manifest().await.map_err(|e| match e {
        super::WriteError::Manifest(m) => DatasetError::Manifest(m),
        e => remote_err(e.to_string()),
    })?;
    // A Delta table is read as its readers see it; the files of its older versions are no strays.
    let mut in_table = std::collections::HashSet::new();
    let manifest = match manifest {
        Some(m) if m.table_format.as_deref() == Some(super::delta::DELTA) => {
            let snap = super::delta::snapshot(&target)
                .await
                .map_err(|e| remote_err(e.to_string()))?;
            in_table = snap.referenced.clone();
            Some(super::delta::published_view(m, &snap))
        }
        m => m,
    };
    let parts: Vec<String> = target
        .entries()
        .await
        .map_err(|e| remote_err(e.to_string()))?
        .into_iter()
        .filter(|e| e.kind == Kind::Part || super::dir::looks_like_data(&e.relative))
        .filter(|e| !in_table.contains(&e.relative) || listed_in(manifest.as_ref(), &e.relative))
        .map(|e| e.relative)
        .collect();
    let incomplete = manifest.as_ref().and_then(incomplete_of);
    let (files, ignored, note) = chosen_files(manifest.as_ref(), parts, every_audit);
    let empty_audit = manifest
        .as_ref()
        .is_some_and(|m| m.complete && m.parts.is_empty());
    if files.is_empty() && !empty_audit {
        return Err(DatasetError::Empty(PathBuf::from(url)));
    }
    let local = tempfile::Builder::new()
        .prefix("fleet-audit-fetch-")
        .tempdir()
        .map_err(|source| DatasetError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    download(url, &dir, files, manifest.as_ref(), local.path()).await?;
    keep_manifest(manifest.as_ref(), every_audit, empty_audit, local.path())?;
    Ok(Fetched {
        dir: local,
        ignored,
        note,
        incomplete,
    })
}

/// Which of the `parts` under the prefix to fetch, which to ignore, and why they are not the last
/// audit's: with a manifest, what it lists (every audit's with `every_audit`, else the latest
/// complete audit's), the others ignored; without one, every part.
fn chosen_files(
    manifest: Option<&Manifest>,
    parts: Vec<String>,
    every_audit: bool,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut note = None;
    let (files, ignored): (Vec<String>, Vec<String>) = match manifest {
        Some(m) => {
            let set: std::collections::HashSet<&str> =
                m.all_parts().map(|p| p.file.as_str()).collect();
            let ignored = parts
                .into_iter()
                .filter(|p| !set.contains(p.as_str()))
                .collect();
            let listed = if every_audit {
                m.all_parts().map(|p| p.file.clone()).collect()
            } else {
                let (audits, latest, why) = audits_of(m, |f| PathBuf::from(f));
                note = why;
                audits[latest]
                    .files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect()
            };
            (listed, ignored)
        }
        None => (parts, Vec::new()),
    };
    (files, ignored, note)
}

/// Copies each of `files` from the store `dir` (at `url`) into `local` under its relative path; a
/// part the manifest lists must be what was committed (`PartEntry::verify`).
async fn download(
    url: &str,
    dir: &Arc<RemoteDir>,
    files: Vec<String>,
    manifest: Option<&Manifest>,
    local: &Path,
) -> Result<(), DatasetError> {
    let remote_err = |reason: String| remote_error(url, reason);
    for rel in files {
        let bytes = dir
            .get(&rel)
            .await
            .map_err(|e| remote_err(e.reason()))?
            .ok_or_else(|| remote_err(format!("{rel} is listed in the manifest but missing")))?;
        if let Some(entry) = manifest.and_then(|m| m.all_parts().find(|p| p.file == rel)) {
            entry
                .verify(&super::PartDigest::of_bytes(&bytes))
                .map_err(|reason| DatasetError::Altered {
                    path: PathBuf::from(dir.url_of(&rel)),
                    reason,
                })?;
        }
        let path = local.join(&rel);
        let io = |source| DatasetError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &bytes).map_err(io)?;
    }
    Ok(())
}

/// Writes the manifest beside the fetched files in `local` when the local readers need it: with
/// `every_audit` (every file it lists is there), or for a complete audit of no rows (the earlier
/// audits left out, since their files are not there).
fn keep_manifest(
    manifest: Option<&Manifest>,
    every_audit: bool,
    empty_audit: bool,
    local: &Path,
) -> Result<(), DatasetError> {
    let kept = match manifest {
        // Every file it lists is here: the local readers see the audits as they are.
        Some(m) if every_audit => Some(m.clone()),
        // A complete audit of no rows: its manifest says so (the earlier audits are not here).
        Some(m) if empty_audit => {
            let mut m = m.clone();
            m.earlier.clear();
            Some(m)
        }
        _ => None,
    };
    if let Some(m) = kept {
        let path = local.join(super::MANIFEST);
        std::fs::write(&path, m.to_json()).map_err(|source| DatasetError::Io { path, source })?;
    }
    Ok(())
}
