//! `smolsweep info`: what this binary runs on — versions, the libtorch it
//! loaded, CUDA devices, and which fused attention kernel libtorch picks for
//! the bf16 causal GQA attention our models use.

use anyhow::Result;
use smolsweep_model::device;
use tch::{Device, Kind, Tensor};

use super::bench::sdpa_backend_name;

pub fn run() -> Result<()> {
    println!("smolsweep       {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch        {} (built against)",
        device::libtorch_version()
    );
    println!(
        "libtorch path   {}",
        device::loaded_libtorch_path().unwrap_or_else(|| "unknown".into())
    );
    let cuda_lib = device::load_cuda_backend();
    println!(
        "libtorch_cuda   {}",
        if cuda_lib {
            // Which one: beside libtorch_cpu, or another found on the way.
            match device::loaded_library_path("libtorch_cuda.so") {
                Some(p) => format!("loaded ({p})"),
                None => "loaded".to_owned(),
            }
        } else {
            "not found (CPU-only build?)".to_owned()
        }
    );
    let cuda = tch::Cuda::is_available();
    let n = tch::Cuda::device_count();
    println!("cuda available  {cuda}");
    println!("cuda devices    {n}");
    println!("cudnn           {}", tch::Cuda::cudnn_is_available());
    println!("cpu threads     {}", tch::get_num_threads());
    if cuda {
        // SmolLM2-135M's attention: 9 query heads, 3 KV heads, head dim 64.
        let dev = Device::Cuda(0);
        let q = Tensor::zeros([1, 9, 128, 64], (Kind::BFloat16, dev));
        let kv = Tensor::zeros([1, 3, 128, 64], (Kind::BFloat16, dev));
        let id =
            Tensor::internal_fused_sdp_choice(&q, &kv, &kv, None::<Tensor>, 0.0, true, None, true);
        println!(
            "sdpa backend    {} (bf16, causal, GQA 9/3, head dim 64)",
            sdpa_backend_name(id)
        );
        // Packed rows on the SDPA path: a block-diagonal boolean mask.
        let mask = Tensor::ones([128, 128], (Kind::Bool, dev))
            .tril(0)
            .view([1, 1, 128, 128]);
        let id =
            Tensor::internal_fused_sdp_choice(&q, &kv, &kv, Some(mask), 0.0, false, None, true);
        println!(
            "sdpa masked     {} (bf16, boolean mask as packed rows use, GQA 9/3, head dim 64)",
            sdpa_backend_name(id)
        );
    } else {
        println!("sdpa backend    math (CPU)");
        println!("sdpa masked     math (CPU)");
    }
    Ok(())
}
