// CUDA-graph capture and replay for the trainer (at::cuda::CUDAGraph), as
// torch.cuda.graph does it: a side stream taken from the pool, warm-up
// runs on it, capture on it into a memory pool shared by all of one
// trainer's graphs, replay on the caller's current stream.
//
// Compiled only where the CUDA runtime headers are found (CUDAGraph.h needs
// them) and libtorch has torch_cuda; elsewhere build.rs leaves this file
// out and the Rust side reports the calls unavailable. Same error
// convention as shim.cpp: NULL on success, a malloc'd message otherwise.

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/StreamGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace {

char* smk_graph_error(const char* msg) {
  return strdup(msg == nullptr ? "unknown C++ exception" : msg);
}

// `waiter` waits (on the device) for what `first` has queued so far.
// Through c10's device-generic event (c10_cuda implements it), not
// at::cuda::CUDAEvent or the runtime API (and device-generic guards, not
// c10::cuda's inline ones): the shim then calls no CUDA runtime symbol
// itself, so the binary needs no libcudart of its own and
// finds CUDA wherever libtorch_cuda finds it.
void stream_wait(c10::cuda::CUDAStream waiter, c10::cuda::CUDAStream first) {
  c10::Event ev(c10::DeviceType::CUDA);
  ev.record(first.unwrap());
  ev.block(waiter.unwrap());
}

// One trainer's side stream, the guard that makes it current between
// enter and leave, and the memory pool its graphs share. Sharing is safe
// because the graphs replay one after another on one stream and each
// graph's outputs stay referenced (so a later capture never reuses them).
struct Side {
  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
  std::optional<c10::StreamGuard> guard;
  at::cuda::MempoolId_t pool;
};

}  // namespace

// Variadic: a body's commas (braced initialisers) are not argument breaks.
#define SMK_GRAPH_PROTECT(...)             \
  try {                                    \
    __VA_ARGS__                            \
    return nullptr;                        \
  } catch (const std::exception& e) {      \
    return smk_graph_error(e.what());      \
  } catch (...) {                          \
    return smk_graph_error(nullptr);       \
  }

extern "C" {

// A side stream and a graph memory pool on CUDA device `device`.
char* smk_graph_side_new(int64_t device, void** out) {
  SMK_GRAPH_PROTECT({
    auto d = static_cast<c10::DeviceIndex>(device);
    TORCH_CHECK(d >= 0 && d < c10::cuda::device_count(), "no CUDA device ", device);
    c10::DeviceGuard dev(c10::Device(c10::DeviceType::CUDA, d));
    auto* s = new Side{d, c10::cuda::getStreamFromPool(false, d), std::nullopt,
                       at::cuda::graph_pool_handle()};
    *out = s;
  })
}

void smk_graph_side_free(void* side) { delete static_cast<Side*>(side); }

// Makes the side stream current, after what the current stream has queued
// (so the side stream sees the inputs just copied there).
char* smk_graph_side_enter(void* side) {
  SMK_GRAPH_PROTECT({
    auto* s = static_cast<Side*>(side);
    TORCH_CHECK(!s->guard.has_value(), "the side stream is already current");
    stream_wait(s->stream, c10::cuda::getCurrentCUDAStream(s->device));
    s->guard.emplace(s->stream.unwrap());
  })
}

// Restores the previous current stream, which then waits for the side
// stream's work (so what follows sees its results).
char* smk_graph_side_leave(void* side) {
  SMK_GRAPH_PROTECT({
    auto* s = static_cast<Side*>(side);
    TORCH_CHECK(s->guard.has_value(), "the side stream is not current");
    s->guard.reset();
    stream_wait(c10::cuda::getCurrentCUDAStream(s->device), s->stream);
  })
}

// A new, empty graph (on the side's device).
char* smk_graph_new(void* side, void** out) {
  SMK_GRAPH_PROTECT({
    auto* s = static_cast<Side*>(side);
    c10::DeviceGuard dev(c10::Device(c10::DeviceType::CUDA, s->device));
    *out = new at::cuda::CUDAGraph();
  })
}

void smk_graph_free(void* graph) { delete static_cast<at::cuda::CUDAGraph*>(graph); }

// Starts capturing the side stream (which must be current: between
// smk_graph_side_enter and smk_graph_side_leave) into the side's pool. As
// torch.cuda.graph: the device is synchronised first, so no earlier work
// is still running on memory the capture may reuse.
char* smk_graph_capture_begin(void* side, void* graph) {
  SMK_GRAPH_PROTECT({
    auto* s = static_cast<Side*>(side);
    TORCH_CHECK(s->guard.has_value(), "capture needs the side stream current");
    c10::cuda::device_synchronize();
    static_cast<at::cuda::CUDAGraph*>(graph)->capture_begin(s->pool);
  })
}

// Ends the capture and instantiates the graph. Also called after a failed
// capture, to leave capture mode; its error then says why.
char* smk_graph_capture_end(void* graph) {
  SMK_GRAPH_PROTECT({ static_cast<at::cuda::CUDAGraph*>(graph)->capture_end(); })
}

// Launches the captured work on the current stream.
char* smk_graph_replay(void* graph) {
  SMK_GRAPH_PROTECT({ static_cast<at::cuda::CUDAGraph*>(graph)->replay(); })
}

}  // extern "C"
