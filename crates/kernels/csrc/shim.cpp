// The C side of smolsweep-kernels: libtorch ops that tch 0.24 does not
// generate bindings for, called through the ATen dispatcher (so autograd
// records them) on tensors handed over by pointer.
//
// A tch `Tensor` wraps a `C_tensor*`, which is an `at::Tensor*`: inputs are
// borrowed pointers, outputs are `new at::Tensor(...)` that the Rust side
// owns (and frees through tch's own destructor). Every entry point returns
// NULL on success or a malloc'd message for the C++ exception it caught,
// which the caller frees with smk_free_error; no exception crosses the FFI.

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_flash_attention_forward.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/empty.h>
#include <torch/headeronly/version.h>

typedef at::Tensor* tensor;

static char* smk_error(const char* msg) {
  return strdup(msg == nullptr ? "unknown C++ exception" : msg);
}

#define SMK_PROTECT(body)                  \
  try {                                    \
    body                                   \
    return nullptr;                        \
  } catch (const std::exception& e) {      \
    return smk_error(e.what());            \
  } catch (...) {                          \
    return smk_error(nullptr);             \
  }

static std::vector<at::Tensor> smk_list(const tensor* ts, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}

extern "C" {

void smk_free_error(char* e) { free(e); }

// The libtorch version the shim was compiled against, "2.11.0".
const char* smk_torch_version() { return TORCH_VERSION; }

// A tensor of `sizes` (contiguous) over `flat`'s storage from element
// `offset`: shares memory with `flat` but is not an autograd view of it,
// so it can be a parameter's data or gradient and be detached in place.
char* smk_alias(tensor flat, int64_t offset, const int64_t* sizes, size_t ndim, tensor* out) {
  SMK_PROTECT({
    at::NoGradGuard no_grad;
    std::vector<int64_t> sz(sizes, sizes + ndim);
    std::vector<int64_t> st(ndim, 1);
    for (size_t i = ndim; i-- > 1;) st[i - 1] = st[i] * sz[i];
    TORCH_CHECK(flat->is_contiguous(), "smk_alias: the flat tensor is not contiguous");
    int64_t numel = 1;
    for (auto d : sz) numel *= d;
    TORCH_CHECK(offset >= 0 && offset + numel <= flat->numel(),
                "smk_alias: elements ", offset, "..", offset + numel, " outside a flat tensor of ",
                flat->numel());
    at::Tensor a = at::empty({0}, flat->options());
    a.set_(flat->storage(), flat->storage_offset() + offset, sz, st);
    *out = new at::Tensor(a);
  })
}

// Makes `grad` the gradient of `var` (same shape, dtype and device):
// backward then accumulates into it in place.
char* smk_set_grad(tensor var, tensor grad) {
  SMK_PROTECT({
    TORCH_CHECK(var->sizes() == grad->sizes(), "smk_set_grad: shape ", grad->sizes(),
                " for a variable of shape ", var->sizes());
    TORCH_CHECK(var->dtype() == grad->dtype(), "smk_set_grad: dtype ", grad->dtype(),
                " for a variable of dtype ", var->dtype());
    var->mutable_grad() = *grad;
  })
}

// The data pointer of `t`'s gradient, or NULL when it has none: lets the
// caller check that backward still writes where it expects.
char* smk_grad_data_ptr(tensor t, const void** out) {
  SMK_PROTECT({
    const at::Tensor& g = t->grad();
    *out = g.defined() ? g.const_data_ptr() : nullptr;
  })
}

// aten::_fused_adamw_ over n tensors (all one dtype and device); the
// caller keeps `steps` (one fp32 scalar tensor each) at the update count.
char* smk_fused_adamw(const tensor* params, const tensor* grads, const tensor* exp_avgs,
                      const tensor* exp_avg_sqs, const tensor* steps, size_t n, double lr,
                      double beta1, double beta2, double weight_decay, double eps) {
  SMK_PROTECT({
    at::NoGradGuard no_grad;
    auto p = smk_list(params, n);
    auto g = smk_list(grads, n);
    auto m = smk_list(exp_avgs, n);
    auto v = smk_list(exp_avg_sqs, n);
    auto s = smk_list(steps, n);
    std::vector<at::Tensor> none;
    at::_fused_adamw_(p, g, m, v, none, s, lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false);
  })
}

// aten::_flash_attention_forward on packed rows: q [T, Hq, D], k/v
// [T, Hkv, D], int32 cumulative sequence lengths [n+1]; returns the
// output [T, Hq, D]. Through the dispatcher, so it records its backward.
char* smk_flash_attention_varlen(tensor q, tensor k, tensor v, tensor cu_q, tensor cu_k,
                                 int64_t max_q, int64_t max_k, double scale, int causal,
                                 tensor* out) {
  SMK_PROTECT({
    auto r = at::_flash_attention_forward(*q, *k, *v, *cu_q, *cu_k, max_q, max_k,
                                          /*dropout_p=*/0.0, causal != 0,
                                          /*return_debug_mask=*/false, scale);
    *out = new at::Tensor(std::get<0>(r));
  })
}

// The CUDA caching allocator's byte counts for `device` (what
// torch.cuda.memory_allocated / max_memory_allocated / memory_reserved /
// max_memory_reserved report), then, if `reset_peak`, restarts the peaks
// from the current values. Through c10's device-generic allocator
// interface, so the shim needs no CUDA headers; an error where no CUDA
// allocator is registered.
char* smk_cuda_memory(int64_t device, int reset_peak, int64_t* out) {
  SMK_PROTECT({
    auto* a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    auto stats = a->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto all = static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE);
    out[0] = stats.allocated_bytes[all].current;
    out[1] = stats.allocated_bytes[all].peak;
    out[2] = stats.reserved_bytes[all].current;
    out[3] = stats.reserved_bytes[all].peak;
    if (reset_peak != 0) a->resetPeakStats(static_cast<c10::DeviceIndex>(device));
  })
}

// Hands the cached blocks nothing uses back to the device
// (torch.cuda.empty_cache). After the trainer's micro-batch probe, so that
// what the process holds (and reports, and a sweep packs trials by) is
// what training needs, not what a probe that ran out of memory cached.
char* smk_cuda_empty_cache() {
  SMK_PROTECT({ c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache(); })
}

}  // extern "C"
