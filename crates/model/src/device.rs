//! Device and dtype choice: "auto" means the first CUDA device in bf16 when
//! one is visible, else the CPU in fp32.
//!
//! The linker drops `libtorch_cuda.so` from the binary's needed list because
//! nothing references it directly, and without it libtorch reports no CUDA
//! even on a GPU machine; [`load_cuda_backend`] dlopens it once before any
//! CUDA query.

use std::sync::OnceLock;

use tch::{Device, Kind};

use crate::error::ModelError;

pub use smolsweep_config::{DType, DeviceSpec};

/// Resolves a device spec to a concrete device, failing when CUDA is
/// asked for and not there.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device, ModelError> {
    load_cuda_backend();
    match spec {
        DeviceSpec::Auto => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => {
            let n = tch::Cuda::device_count();
            if (i as i64) < n {
                Ok(Device::Cuda(i))
            } else {
                Err(ModelError::Device {
                    spec: format!("cuda:{i}"),
                    msg: format!("libtorch sees {n} CUDA device(s)"),
                })
            }
        }
    }
}

/// The tensor kind of a dtype on a device: fp32 on CPU (bf16 matmuls
/// there are slow and lossy), bf16 on CUDA.
pub fn resolve_kind(dtype: DType, device: Device) -> Kind {
    match (dtype, device) {
        (DType::F32, _) => Kind::Float,
        (DType::Bf16, _) => Kind::BFloat16,
        (DType::Auto, Device::Cpu) => Kind::Float,
        (DType::Auto, _) => Kind::BFloat16,
    }
}

/// Loads `libtorch_cuda.so` (once) so that libtorch registers its CUDA
/// backend. Failure is normal on CPU-only libtorch builds and is ignored.
pub fn load_cuda_backend() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let build_dir = option_env!("SMOLSWEEP_LIBTORCH_LIB").unwrap_or("");
        cuda_candidates(loaded_libtorch_path().as_deref(), build_dir)
            .iter()
            .any(|c| dlopen_global(c))
    })
}

/// Where `libtorch_cuda.so` is looked for, best first: beside the
/// `libtorch_cpu.so` this process loaded, then in the build-time lib
/// directory, then on the loader's search path. The loaded one comes first
/// so that a binary whose rpath was rewritten (the container image's,
/// docker/Dockerfile) pairs with its own libtorch, not with a build-time
/// directory that happens to exist where it runs.
fn cuda_candidates(loaded_cpu: Option<&str>, build_dir: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let beside = loaded_cpu
        .and_then(|p| std::path::Path::new(p).parent())
        .map(|d| d.display().to_string());
    for dir in [beside.as_deref(), Some(build_dir)].into_iter().flatten() {
        let c = format!("{dir}/libtorch_cuda.so");
        if !dir.is_empty() && !out.contains(&c) {
            out.push(c);
        }
    }
    out.push("libtorch_cuda.so".to_owned());
    out
}

#[allow(unsafe_code)]
fn dlopen_global(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept
    // open for the life of the process on purpose (libtorch's CUDA kernels
    // must stay registered), so it is never closed.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    !handle.is_null()
}

/// The path of the libtorch shared library this process actually loaded,
/// read from `/proc/self/maps` (what `info` reports, not what we hoped).
pub fn loaded_libtorch_path() -> Option<String> {
    loaded_library_path("libtorch_cpu.so")
}

/// The path of the loaded shared library whose file name is `name`, read
/// from `/proc/self/maps`.
pub fn loaded_library_path(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| std::path::Path::new(p).file_name() == Some(std::ffi::OsStr::new(name)))
        .map(str::to_owned)
}

/// libtorch's version as found at build time.
pub fn libtorch_version() -> &'static str {
    option_env!("SMOLSWEEP_LIBTORCH_VERSION").unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            "cuda:3".parse::<DeviceSpec>().ok(),
            Some(DeviceSpec::Cuda(3))
        );
        assert_eq!("cpu".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cpu));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!(resolve_kind(DType::Auto, Device::Cpu), Kind::Float);
        assert_eq!(resolve_kind(DType::Auto, Device::Cuda(0)), Kind::BFloat16);
    }

    #[test]
    fn cuda_is_looked_for_beside_the_loaded_libtorch_first() {
        assert_eq!(
            cuda_candidates(
                Some("/opt/smolsweep/lib/torch/lib/libtorch_cpu.so"),
                "/venv/torch/lib"
            ),
            [
                "/opt/smolsweep/lib/torch/lib/libtorch_cuda.so",
                "/venv/torch/lib/libtorch_cuda.so",
                "libtorch_cuda.so"
            ]
        );
        assert_eq!(
            cuda_candidates(Some("/venv/torch/lib/libtorch_cpu.so"), "/venv/torch/lib"),
            ["/venv/torch/lib/libtorch_cuda.so", "libtorch_cuda.so"]
        );
        assert_eq!(cuda_candidates(None, ""), ["libtorch_cuda.so"]);
    }

    #[test]
    fn cpu_resolves_without_cuda() {
        assert_eq!(resolve_device(DeviceSpec::Cpu).ok(), Some(Device::Cpu));
    }
}
