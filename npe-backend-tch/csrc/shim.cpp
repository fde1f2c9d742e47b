// The few libtorch C++ calls tch does not bind: CPU/CUDA autocast and channels-last memory
// format. Every function catches C++ exceptions and returns them as a malloc'd message (freed by
// the Rust side), so no exception crosses into Rust.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "error.h"

extern "C" {

// Enter (enabled != 0) or leave an autocast region on the CPU (cuda == 0) or CUDA, casting to
// bfloat16 (half == 0) or float16. Returns 0, or 1 with *err set.
int npe_autocast(int cuda, int enabled, int half, char** err) {
  NPE_TRY({
    const auto device = cuda != 0 ? at::kCUDA : at::kCPU;
    if (enabled != 0) {
      at::autocast::set_autocast_dtype(device, half != 0 ? at::kHalf : at::kBFloat16);
      at::autocast::set_autocast_enabled(device, true);
      at::autocast::increment_nesting();
    } else {
      at::autocast::set_autocast_enabled(device, false);
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    }
  })
}

// `*out = new at::Tensor(t.contiguous(ChannelsLast))` for a 4-d tensor. Returns 0, or 1 with *err.
int npe_channels_last(void* tensor, void** out, char** err) {
  NPE_TRY({
    const auto* t = static_cast<const at::Tensor*>(tensor);
    *out = new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast));
  })
}

}  // extern "C"
