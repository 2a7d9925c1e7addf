//! Build script shared by every crate that links libtorch (the cli crate
//! points its `build` key here): it records an rpath to libtorch's `lib`
//! directory so that binaries and test executables run with no
//! `LD_LIBRARY_PATH`, and it bakes the libtorch version in for
//! `smolsweep info`.
//!
//! `torch-sys` (links = "tch") tells its direct dependents where it found
//! libtorch through `DEP_TCH_LIBTORCH_LIB`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .ok()
        .or_else(|| std::env::var("LIBTORCH").ok().map(|p| format!("{p}/lib")));
    let Some(lib) = lib else {
        println!("cargo:rustc-env=SMOLSWEEP_LIBTORCH_LIB=");
        println!("cargo:rustc-env=SMOLSWEEP_LIBTORCH_VERSION=unknown");
        return;
    };
    if cfg!(target_os = "linux") || cfg!(target_os = "macos") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rustc-env=SMOLSWEEP_LIBTORCH_LIB={lib}");
    // pip's torch has torch/version.py beside torch/lib; a plain libtorch
    // archive has build-version beside lib/.
    let root = Path::new(&lib)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let version = std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("__version__ = ")
                    .map(|v| v.trim_matches(['\'', '"', ' ']).to_owned())
            })
        })
        .or_else(|| {
            std::fs::read_to_string(root.join("build-version"))
                .ok()
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SMOLSWEEP_LIBTORCH_VERSION={version}");
}
