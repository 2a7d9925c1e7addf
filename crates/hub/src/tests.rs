//! The resolver against caches in the real layout.

use super::*;
use crate::layout::CacheRepo;

/// Runs `f` with `HF_HUB_CACHE` pointing at `root` (one test at a time
/// touches the environment).
fn with_cache<T>(root: &Path, f: impl FnOnce() -> T) -> T {
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let old = std::env::var_os("HF_HUB_CACHE");
    std::env::set_var("HF_HUB_CACHE", root);
    let out = f();
    match old {
        Some(v) => std::env::set_var("HF_HUB_CACHE", v),
        None => std::env::remove_var("HF_HUB_CACHE"),
    }
    out
}

#[test]
fn repo_ids_and_paths() {
    let id = RepoId::parse("HuggingFaceTB/SmolLM2-135M-Instruct").expect("id");
    assert_eq!(id.revision, None);
    assert_eq!(
        id.folder(RepoType::Model),
        "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    );
    let id = RepoId::parse("Rowan/hellaswag@convert/parquet").expect("rev");
    assert_eq!(id.revision.as_deref(), Some("convert/parquet"));
    for not in ["./a/b", "/a/b", "~/a", "a", "a/b/c", "a/", "a/b@", "../x"] {
        assert_eq!(RepoId::parse(not), None, "{not}");
    }
}

#[test]
fn model_id_at_refs_main_and_at_a_revision() {
    let cache = tempfile::tempdir().expect("tmp");
    let repo = CacheRepo::new(cache.path(), RepoType::Model, "Org/Tiny").expect("repo");
    repo.file("aaa", "config.json", b"{}").expect("f");
    repo.file("bbb", "config.json", b"{\"x\": 1}").expect("f");
    repo.set_ref("main", "bbb").expect("ref");
    with_cache(cache.path(), || {
        let l = locate(Path::new("Org/Tiny"), RepoType::Model).expect("main");
        assert_eq!(l.roots, vec![repo.snapshot("bbb")]);
        let l = locate(Path::new("Org/Tiny@aaa"), RepoType::Model).expect("rev");
        assert_eq!(l.roots, vec![repo.snapshot("aaa")]);
        let e = locate(Path::new("Org/Tiny@ccc"), RepoType::Model)
            .expect_err("unknown")
            .to_string();
        assert!(
            e.contains("no revision `ccc`") && e.contains("aaa, bbb"),
            "{e}"
        );
    });
    // The folder and the snapshot are references too.
    assert_eq!(
        locate(&repo.dir, RepoType::Model).expect("folder").roots,
        vec![repo.snapshot("bbb")]
    );
    assert_eq!(
        locate(&repo.snapshot("aaa"), RepoType::Model)
            .expect("snap")
            .roots,
        vec![repo.snapshot("aaa")]
    );
}

#[test]
fn a_ref_to_a_missing_snapshot_is_an_error_not_another_snapshot() {
    let cache = tempfile::tempdir().expect("tmp");
    let repo = CacheRepo::new(cache.path(), RepoType::Model, "Org/Tiny").expect("repo");
    repo.file("old", "config.json", b"{}").expect("f");
    repo.set_ref("main", "new").expect("ref");
    let e = locate(&repo.dir, RepoType::Model)
        .expect_err("missing")
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: refs/main names snapshot new, which is not in snapshots/ (an interrupted \
             download? download it again, or name a snapshot that is there: old)",
            repo.dir.display()
        )
    );
}

#[test]
fn several_snapshots_without_refs_must_be_chosen() {
    let cache = tempfile::tempdir().expect("tmp");
    let repo = CacheRepo::new(cache.path(), RepoType::Model, "Org/Tiny").expect("repo");
    repo.file("a1", "config.json", b"{}").expect("f");
    assert_eq!(
        locate(&repo.dir, RepoType::Model).expect("one").roots,
        vec![repo.snapshot("a1")]
    );
    repo.file("b2", "config.json", b"{}").expect("f");
    let e = locate(&repo.dir, RepoType::Model)
        .expect_err("two")
        .to_string();
    assert!(e.contains("several snapshots (a1, b2)"), "{e}");
}

#[test]
fn a_missing_blob_is_named() {
    let cache = tempfile::tempdir().expect("tmp");
    let repo = CacheRepo::new(cache.path(), RepoType::Model, "Org/Tiny").expect("repo");
    repo.file("r", "config.json", b"{}").expect("f");
    let link = repo.file("r", "model.safetensors", b"weights").expect("f");
    repo.set_ref("main", "r").expect("ref");
    repo.remove_blob("r", "model.safetensors").expect("rm");
    let e = locate(&repo.dir, RepoType::Model)
        .expect_err("blob")
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: a link to {}",
            link.display(),
            repo.dir.join("blobs").display()
        )),
        "{e}"
    );
    assert!(
        e.ends_with("which is missing (an incomplete download: download it again)"),
        "{e}"
    );
}

#[test]
fn datasets_offer_the_parquet_conversion_after_main() {
    let cache = tempfile::tempdir().expect("tmp");
    let repo = CacheRepo::new(cache.path(), RepoType::Dataset, "Rowan/hellaswag").expect("repo");
    repo.file("script", "hellaswag.py", b"# loader").expect("f");
    repo.file("pq", "default/validation/0000.parquet", b"PAR1")
        .expect("f");
    repo.set_ref("main", "script").expect("ref");
    repo.set_ref("convert/parquet", "pq").expect("ref");
    with_cache(cache.path(), || {
        let l = locate(Path::new("Rowan/hellaswag"), RepoType::Dataset).expect("ds");
        assert_eq!(l.roots, vec![repo.snapshot("script"), repo.snapshot("pq")]);
        // Models have no conversion branch; a revision means that one only.
        let l = locate(
            Path::new("Rowan/hellaswag@convert/parquet"),
            RepoType::Dataset,
        )
        .expect("rev");
        assert_eq!(l.roots, vec![repo.snapshot("pq")]);
    });
}

#[test]
fn not_found_lists_the_folders_searched() {
    let cache = tempfile::tempdir().expect("tmp");
    let e = with_cache(cache.path(), || {
        locate(Path::new("allenai/ai2_arc"), RepoType::Dataset)
            .expect_err("absent")
            .to_string()
    });
    let first = cache.path().join("datasets--allenai--ai2_arc");
    assert!(
        e.starts_with(&format!(
            "allenai/ai2_arc: no such file or directory, and not in the local hub cache (searched {}",
            first.display()
        )),
        "{e}"
    );
    let e = locate(Path::new("./nope/here"), RepoType::Dataset)
        .expect_err("path")
        .to_string();
    assert_eq!(e, "./nope/here: no such file or directory");
}

#[test]
fn home_is_expanded() {
    let home = std::env::var("HOME").expect("HOME");
    assert_eq!(expand_home("~/x/y"), Path::new(&home).join("x/y"));
    assert_eq!(expand_home("~"), PathBuf::from(&home));
    assert_eq!(expand_home("a/~"), PathBuf::from("a/~"));
}
