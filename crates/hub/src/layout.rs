//! Writes repositories in the hub cache layout the way `huggingface_hub`
//! downloads them — file contents in `blobs/HASH`, relative links from
//! `snapshots/COMMIT/PATH`, branch heads in `refs/NAME`, a `.locks/`
//! folder — so tests can build the caches users have (partial downloads,
//! several branches, missing blobs) without the network.

use std::path::{Path, PathBuf};

use crate::{RepoId, RepoType};

/// A repository folder being written (`ROOT/datasets--ORG--NAME`).
#[derive(Debug, Clone)]
pub struct CacheRepo {
    pub dir: PathBuf,
}

/// A content hash for blob names (the hub uses sha256 or git's sha1;
/// only uniqueness matters here).
fn blob_name(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:08x}", bytes.len())
}

impl CacheRepo {
    /// Creates `root/{models,datasets}--ORG--NAME` with its `.locks/`.
    pub fn new(root: &Path, ty: RepoType, id: &str) -> std::io::Result<CacheRepo> {
        let id = RepoId::parse(id).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{id}: not ORG/NAME"),
            )
        })?;
        let dir = root.join(id.folder(ty));
        std::fs::create_dir_all(dir.join("blobs"))?;
        std::fs::create_dir_all(dir.join(".locks").join(id.folder(ty)))?;
        Ok(CacheRepo { dir })
    }

    /// Writes `path` (relative to the repository) into snapshot `commit`:
    /// the content as a blob, the snapshot entry as a relative link.
    pub fn file(&self, commit: &str, path: &str, content: &[u8]) -> std::io::Result<PathBuf> {
        let blob = blob_name(content);
        std::fs::write(self.dir.join("blobs").join(&blob), content)?;
        let link = self.dir.join("snapshots").join(commit).join(path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let depth = path.split('/').count() + 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(&blob);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link)?;
        }
        std::os::unix::fs::symlink(&target, &link)?;
        Ok(link)
    }

    /// Points branch `name` (`main`, `convert/parquet`) at `commit`.
    pub fn set_ref(&self, name: &str, commit: &str) -> std::io::Result<()> {
        let p = self.dir.join("refs").join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, commit)
    }

    /// The snapshot folder of `commit`.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// Deletes the blob behind `path` in `commit` (a pruned or
    /// interrupted download).
    pub fn remove_blob(&self, commit: &str, path: &str) -> std::io::Result<()> {
        let link = self.snapshot(commit).join(path);
        let target = std::fs::read_link(&link)?;
        let parent = link.parent().unwrap_or(Path::new("."));
        std::fs::remove_file(parent.join(target))
    }
}
