//! Choosing the snapshot of a hub cache repository folder
//! (`refs/NAME` -> commit -> `snapshots/COMMIT/`) and checking that its
//! links lead to blobs that are there.

use std::path::{Path, PathBuf};

use crate::{HubError, RepoType};

/// The branch the hub writes a script dataset's Parquet conversion to.
const PARQUET_BRANCH: &str = "convert/parquet";

fn snapshot_names(repo: &Path) -> Result<Vec<String>, HubError> {
    let dir = repo.join("snapshots");
    let entries = std::fs::read_dir(&dir).map_err(|source| HubError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The commit `refs/NAME` holds, if that ref exists.
fn read_ref(repo: &Path, name: &str) -> Result<Option<String>, HubError> {
    let path = repo.join("refs").join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // refs/convert is a folder; `refs/NAME` being one is "no such ref".
        Err(_) if path.is_dir() => Ok(None),
        Err(source) => Err(HubError::Io { path, source }),
    }
}

/// The snapshot `refs/NAME` names: `None` when there is no such ref, an
/// error when it names a snapshot that is not there.
fn by_ref(repo: &Path, name: &str, found: &[String]) -> Result<Option<PathBuf>, HubError> {
    let Some(commit) = read_ref(repo, name)? else {
        return Ok(None);
    };
    let dir = repo.join("snapshots").join(&commit);
    if dir.is_dir() {
        Ok(Some(dir))
    } else {
        Err(HubError::MissingSnapshot {
            repo: repo.to_path_buf(),
            name: name.to_owned(),
            revision: commit,
            found: found.to_vec(),
        })
    }
}

/// The snapshots to read from `repo`, best first: the given revision (a
/// ref name or a snapshot name), else `refs/main` (and, for a dataset,
/// its Parquet conversion), else the only snapshot there is.
pub(crate) fn select(
    repo: &Path,
    revision: Option<&str>,
    ty: RepoType,
) -> Result<Vec<PathBuf>, HubError> {
    let found = snapshot_names(repo)?;
    let mut roots = Vec::new();
    if let Some(rev) = revision {
        let rev = rev.strip_prefix("refs/").unwrap_or(rev);
        let dir = match by_ref(repo, rev, &found)? {
            Some(d) => d,
            None if found.iter().any(|f| f == rev) => repo.join("snapshots").join(rev),
            None => {
                return Err(HubError::UnknownRevision {
                    repo: repo.to_path_buf(),
                    revision: rev.to_owned(),
                    found,
                })
            }
        };
        roots.push(dir);
    } else {
        if let Some(main) = by_ref(repo, "main", &found)? {
            roots.push(main);
        }
        if ty == RepoType::Dataset {
            // A conversion branch naming a snapshot that is gone is not
            // an error while `main` is there to read.
            match by_ref(repo, PARQUET_BRANCH, &found) {
                Ok(Some(d)) if !roots.contains(&d) => roots.push(d),
                Err(e) if roots.is_empty() => return Err(e),
                _ => {}
            }
        }
        if roots.is_empty() {
            match found.as_slice() {
                [] => {
                    return Err(HubError::NoSnapshot {
                        repo: repo.to_path_buf(),
                    })
                }
                [only] => roots.push(repo.join("snapshots").join(only)),
                _ => {
                    return Err(HubError::AmbiguousSnapshot {
                        repo: repo.to_path_buf(),
                        found,
                    })
                }
            }
        }
    }
    for r in &roots {
        check_blobs(r)?;
    }
    Ok(roots)
}

/// Every link under `dir` must lead somewhere: the hub cache links
/// snapshot files to `blobs/`, and a blob missing means the download did
/// not finish (or the blobs were pruned).
pub(crate) fn check_blobs(dir: &Path) -> Result<(), HubError> {
    let entries = std::fs::read_dir(dir).map_err(|source| HubError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(link) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if link.file_type().is_symlink() {
            if std::fs::metadata(&p).is_err() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                let target = p.parent().map_or(target.clone(), |d| d.join(&target));
                return Err(HubError::MissingBlob {
                    file: p,
                    target: normalise(&target),
                });
            }
        } else if link.is_dir() {
            check_blobs(&p)?;
        }
    }
    Ok(())
}

/// `a/b/../c` as `a/c` (links in the hub cache are relative:
/// `../../blobs/HASH`), for a message the user can paste.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}
