//! Read-only memory maps, for the crates that must not write `unsafe`
//! themselves (the workspace denies it outside this crate): the trainer
//! maps its tokenisation cache through [`map_read_only`].

use std::fs::File;

pub use memmap2::Mmap;

/// Maps `file` read-only.
///
/// The map is only sound while nobody truncates or rewrites the file in
/// place; callers map files that are written once under a temporary name
/// and renamed into place (a rename leaves an existing map on the old
/// inode), never modified after.
pub fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: read-only map; the callers' files are replaced by rename,
    // never modified in place (see above).
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(file) }?;
    Ok(map)
}
