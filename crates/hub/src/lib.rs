//! The one resolver for models and datasets, used by every command and by
//! trial and sweep files alike. A reference is what the user wrote:
//!
//! - a path (a file, a model or dataset directory, a `--local-dir`
//!   download), with `~` expanded;
//! - a hub cache repository folder (`models--ORG--NAME`,
//!   `datasets--ORG--NAME`), read at the snapshot its `refs/main` names;
//! - a snapshot folder (`.../snapshots/REV`);
//! - `ORG/NAME[@REV]`, looked up in the local hub caches
//!   ([`cache_roots`]), at `REV` (a branch under `refs/` or a snapshot
//!   name) or else `refs/main`.
//!
//! A dataset repository read at `refs/main` also offers its Parquet
//! conversion (`refs/convert/parquet`) as a second root, because script
//! datasets (hellaswag, piqa) keep their data only there. Snapshots are
//! checked for links whose blob is missing, so an interrupted download is
//! reported as such instead of as "no data files".

mod error;
pub mod layout;
mod snapshot;

use std::path::{Path, PathBuf};

pub use error::HubError;

/// Which half of the hub cache a reference is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoType {
    Model,
    Dataset,
}

impl RepoType {
    /// The cache folder prefix (`models--ORG--NAME`).
    pub fn prefix(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }
}

/// `ORG/NAME[@REV]`, the hub's name of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// `ORG/NAME`.
    pub id: String,
    pub revision: Option<String>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RepoId {
    /// `s` as a repository id, or `None` when it cannot be one (it has a
    /// leading `.`, `/` or `~`, or not exactly one `/` before any `@`).
    pub fn parse(s: &str) -> Option<RepoId> {
        let (id, revision) = match s.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => (id, Some(rev.to_owned())),
            Some(_) => return None,
            None => (s, None),
        };
        let (org, name) = id.split_once('/')?;
        (is_name(org) && is_name(name)).then(|| RepoId {
            id: id.to_owned(),
            revision,
        })
    }

    /// The cache folder name: `models--ORG--NAME`.
    pub fn folder(&self, ty: RepoType) -> String {
        format!("{}--{}", ty.prefix(), self.id.replace('/', "--"))
    }
}

/// `~` and `~/...` with the home directory; other strings as paths.
pub fn expand_home(s: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (s, home) {
        ("~", Some(h)) => h,
        (s, Some(h)) if s.starts_with("~/") => h.join(&s[2..]),
        (s, _) => PathBuf::from(s),
    }
}

/// The local hub caches, in the order `huggingface_hub` prefers them:
/// `$HF_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
/// `~/.cache/huggingface/hub` (those that are set, each once).
pub fn cache_roots() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut roots = Vec::new();
    let candidates = [
        var("HF_HUB_CACHE"),
        var("HF_HOME").map(|h| h.join("hub")),
        var("XDG_CACHE_HOME").map(|x| x.join("huggingface").join("hub")),
        var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")),
    ];
    for root in candidates.into_iter().flatten() {
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots
}

/// Whether `s` would be looked up in the hub cache rather than read as a
/// path relative to the file it was written in: it names no existing
/// path under `base` and has the form `ORG/NAME[@REV]`.
pub fn is_hub_reference(base: &Path, s: &str) -> bool {
    !base.join(s).exists() && RepoId::parse(s).is_some()
}

/// What a reference resolves to: the roots to read, best first (one for
/// a model; a dataset's `refs/main` snapshot may be followed by its
/// Parquet conversion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub roots: Vec<PathBuf>,
}

impl Located {
    /// The best root (there is always at least one).
    pub fn first(&self) -> &Path {
        &self.roots[0]
    }
}

/// Resolves a reference (see the module doc). A path that exists is read
/// as it is (a cache repository folder at its snapshot); anything else
/// must be an `ORG/NAME[@REV]` in one of the [`cache_roots`].
pub fn locate(reference: &Path, ty: RepoType) -> Result<Located, HubError> {
    let text = reference.to_string_lossy();
    let path = expand_home(&text);
    if path.exists() {
        return locate_path(&path, ty);
    }
    let Some(id) = RepoId::parse(&text) else {
        return Err(HubError::NotFound {
            reference: text.into_owned(),
            searched: Vec::new(),
        });
    };
    let searched: Vec<PathBuf> = cache_roots()
        .into_iter()
        .map(|root| root.join(id.folder(ty)))
        .collect();
    match searched.iter().find(|repo| repo.is_dir()) {
        Some(repo) => Ok(Located {
            roots: snapshot::select(repo, id.revision.as_deref(), ty)?,
        }),
        None => Err(HubError::NotFound {
            reference: text.into_owned(),
            searched,
        }),
    }
}

fn locate_path(path: &Path, ty: RepoType) -> Result<Located, HubError> {
    if path.join("snapshots").is_dir() {
        return Ok(Located {
            roots: snapshot::select(path, None, ty)?,
        });
    }
    let in_snapshots = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "snapshots");
    if in_snapshots && path.is_dir() {
        snapshot::check_blobs(path)?;
    }
    Ok(Located {
        roots: vec![path.to_path_buf()],
    })
}

#[cfg(test)]
mod tests;
