//! Compiles `csrc/shim.cpp` against the headers of the libtorch that
//! `torch-sys` links (pip's torch: `include/` and
//! `include/torch/csrc/api/include` beside `lib/`) and links it with
//! `torch_cpu` and `c10`, plus `torch_cuda` and `c10_cuda` when the
//! library has them.
//!
//! Where the headers are missing (a libtorch without them), the crate is
//! built without the shim (no `smolsweep_shim` cfg) and every entry point
//! reports itself unavailable, so callers fall back to plain tch ops.
//!
//! `csrc/graph.cpp` (CUDA graphs) also needs the CUDA runtime headers,
//! which `ATen/cuda/CUDAGraph.h` includes: `$CUDA_HOME/include`, the pip
//! wheels' `nvidia/cu13/include` (or `nvidia/cuda_runtime/include`) beside
//! torch, or `/usr/local/cuda/include`. It is compiled (cfg
//! `smolsweep_cuda_graphs`) only with them and with `torch_cuda`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-changed=csrc/graph.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo::rustc-check-cfg=cfg(smolsweep_shim)");
    println!("cargo::rustc-check-cfg=cfg(smolsweep_cuda_graphs)");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .ok()
        .or_else(|| std::env::var("LIBTORCH").ok().map(|p| format!("{p}/lib")))
        .map(PathBuf::from);
    let Some(lib) = lib else {
        println!(
            "cargo:warning=no libtorch location known; smolsweep-kernels built without its shim"
        );
        return;
    };
    let root = lib.parent().map(PathBuf::from).unwrap_or_default();
    let includes = [
        root.join("include"),
        root.join("include/torch/csrc/api/include"),
    ];
    if !includes[0].join("ATen/ops/_fused_adamw.h").exists() {
        println!(
            "cargo:warning=no libtorch headers under {}; smolsweep-kernels built without its shim",
            includes[0].display()
        );
        return;
    }
    // pip's torch >= 2.7 is built with the C++11 ABI; a libtorch built
    // without it says so through the same variable torch-sys reads.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let has_cuda = ["torch_cuda", "c10_cuda"]
        .iter()
        .all(|name| lib.join(format!("lib{name}.so")).exists());
    let cuda_headers = has_cuda.then(|| cuda_include(&root)).flatten();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/shim.cpp")
        .includes(&includes)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // libtorch's headers warn a lot under -Wall; they are not ours.
        .warnings(false)
        .extra_warnings(false);
    match &cuda_headers {
        Some(dir) => {
            build.file("csrc/graph.cpp").include(dir);
            println!("cargo:rustc-cfg=smolsweep_cuda_graphs");
        }
        None if has_cuda => println!(
            "cargo:warning=no CUDA runtime headers (CUDA_HOME, pip's nvidia/cu13/include with nvidia-cuda-crt, /usr/local/cuda); smolsweep-kernels built without CUDA graphs"
        ),
        None => {}
    }
    build.compile("smolsweep_kernels_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    // This crate's own test binaries find libtorch without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if has_cuda {
        println!("cargo:rustc-link-lib=torch_cuda");
        println!("cargo:rustc-link-lib=c10_cuda");
    }
    println!("cargo:rustc-link-lib=torch_cpu");
    println!("cargo:rustc-link-lib=c10");
    println!("cargo:rustc-cfg=smolsweep_shim");
}

/// A directory with the CUDA runtime headers `ATen/cuda/CUDAGraph.h`
/// includes (`cuda_runtime_api.h` and the `crt/` headers it includes).
fn cuda_include(torch_root: &std::path::Path) -> Option<PathBuf> {
    let site = torch_root.parent().map(PathBuf::from).unwrap_or_default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(home) = std::env::var("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    candidates.push(site.join("nvidia/cu13/include"));
    candidates.push(site.join("nvidia/cuda_runtime/include"));
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        .find(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt/host_defines.h").exists())
}
