//! The layout of the end-to-end tests themselves: every `.rs` file under
//! `tests/it/` must be a module of this binary (cargo compiles only what
//! `main.rs` reaches, so an undeclared file would silently never run), and
//! no test source may sit outside `tests/it/`, where nothing builds it.

use std::path::{Path, PathBuf};

use crate::common::root;

/// `.rs` files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Module names declared with `mod NAME;` (any visibility) in `text`.
fn declared_mods(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.split_once("//").map_or(l, |(code, _)| code).trim();
            // `pub mod`, `pub(crate) mod`, ...
            let l = match l.strip_prefix("pub(") {
                Some(r) => r.split_once(')').map_or(l, |(_, r)| r.trim_start()),
                None => l.strip_prefix("pub ").unwrap_or(l),
            };
            let name = l.strip_prefix("mod ")?.trim().strip_suffix(';')?.trim();
            Some(name.to_string())
        })
        .collect()
}

/// The files one of which must declare `file` as a module, and its name:
/// `a.rs` and `a/mod.rs` are declared by their folder's `main.rs`
/// (top level), `mod.rs`, or the sibling `<folder>.rs`.
fn parent_of(it: &Path, file: &Path) -> (Vec<PathBuf>, String) {
    let (dir, name) = if file.file_name().is_some_and(|n| n == "mod.rs") {
        let dir = file.parent().expect("mod.rs has a folder");
        (
            dir.parent().expect("folder has a parent"),
            dir.file_name().expect("folder name"),
        )
    } else {
        (
            file.parent().expect("file has a folder"),
            file.file_stem().expect("file stem"),
        )
    };
    let name = name.to_string_lossy().into_owned();
    let candidates = if dir == it {
        vec![it.join("main.rs")]
    } else {
        vec![dir.join("mod.rs"), dir.with_extension("rs")]
    };
    (candidates, name)
}

#[test]
fn every_file_under_tests_it_is_a_module_of_the_binary() {
    let it = root().join("tests/it");
    let mut missing = Vec::new();
    for f in rust_files(&it) {
        if f == it.join("main.rs") {
            continue;
        }
        let (parents, name) = parent_of(&it, &f);
        let declared = parents.iter().any(|p| {
            std::fs::read_to_string(p)
                .map(|t| declared_mods(&t).contains(&name))
                .unwrap_or(false)
        });
        if !declared {
            missing.push(format!(
                "{} (add `mod {name};` to {})",
                f.strip_prefix(&it).unwrap_or(&f).display(),
                parents[0]
                    .strip_prefix(&it)
                    .unwrap_or(&parents[0])
                    .display()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "files under tests/it/ that no module declares, so they are never compiled or run:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn modules_are_found_by_their_file_names_not_by_path_attributes() {
    // `#[path]` would let one file be compiled twice, or a declared module
    // name differ from its file, and `every_file_...` relies on the names.
    let it = root().join("tests/it");
    let with_path: Vec<_> = rust_files(&it)
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .expect("read test source")
                .lines()
                .any(|l| l.trim_start().starts_with("#[path"))
        })
        .collect();
    assert!(with_path.is_empty(), "#[path] in {with_path:?}");
}

#[test]
fn no_test_source_lies_outside_tests_it() {
    let tests = root().join("tests");
    let stray: Vec<_> = rust_files(&tests)
        .into_iter()
        .filter(|f| !f.starts_with(tests.join("it")) && !f.starts_with(tests.join("fixtures")))
        .collect();
    assert!(
        stray.is_empty(),
        "Rust files under tests/ outside tests/it/ are built by nothing; make them modules of tests/it/main.rs: {stray:?}"
    );
}

#[test]
fn declared_mods_reads_each_visibility() {
    let text =
        "mod a; // why\npub mod b;\npub(crate) mod c;\n  mod d ;\n// mod e;\nmod f {\nuse mod_g;\n";
    assert_eq!(declared_mods(text), ["a", "b", "c", "d"]);
}
