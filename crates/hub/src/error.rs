//! What can go wrong finding a model or dataset. Every message names the
//! reference the user wrote and, for "not found", every folder searched.

use std::path::PathBuf;

/// A reference that does not lead to readable files.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{reference}: {}", not_found_text(searched))]
    NotFound {
        reference: String,
        /// Hub cache repository folders tried, in order (empty when the
        /// reference is not an `ORG/NAME` id).
        searched: Vec<PathBuf>,
    },
    #[error(
        "{}: refs/{name} names snapshot {revision}, which is not in snapshots/ \
         (an interrupted download? download it again, or name a snapshot that is there: {})",
        repo.display(), list(found)
    )]
    MissingSnapshot {
        repo: PathBuf,
        name: String,
        revision: String,
        found: Vec<String>,
    },
    #[error(
        "{}: no revision `{revision}` (neither refs/{revision} nor snapshots/{revision}; snapshots: {})",
        repo.display(), list(found)
    )]
    UnknownRevision {
        repo: PathBuf,
        revision: String,
        found: Vec<String>,
    },
    #[error("{}: a hub cache folder with no snapshot in snapshots/", repo.display())]
    NoSnapshot { repo: PathBuf },
    #[error(
        "{}: several snapshots ({}) and no refs/main to choose one: \
         name one as ORG/NAME@REV or give its snapshots/REV folder",
        repo.display(), list(found)
    )]
    AmbiguousSnapshot { repo: PathBuf, found: Vec<String> },
    #[error(
        "{}: a link to {}, which is missing (an incomplete download: download it again)",
        file.display(), target.display()
    )]
    MissingBlob { file: PathBuf, target: PathBuf },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn not_found_text(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return "no such file or directory".into();
    }
    let folders: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    format!(
        "no such file or directory, and not in the local hub cache (searched {})",
        folders.join(", ")
    )
}
