// libtorch's distributed engine (c10d) for Rust: a TCPStore rendezvous, a Gloo process group
// (CPU tensors) or, in a build against a CUDA libtorch, an NCCL one (CUDA tensors),
// in-place all-reduce and broadcast, a differentiable all-reduce (synchronised batch norm) and
// the store's key/value calls (pipeline checks, failure reports). Nothing here implements a
// collective: every call is c10d's. C++ exceptions come back as malloc'd messages.
#include <torch/autograd.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef NPE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <c10/util/Logging.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;  // npe's own keys
  c10::intrusive_ptr<c10d::Backend> pg;
  std::chrono::milliseconds timeout;
};

void all_reduce(Group* g, at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  g->pg->allreduce(ts)->wait(g->timeout);
}

// Sum over ranks whose gradient is the same sum over ranks (torch.distributed.nn.all_reduce).
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t group) {
    ctx->saved_data["group"] = group;
    auto y = x.detach().clone().contiguous();
    all_reduce(reinterpret_cast<Group*>(group), y);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* g = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    auto dy = grads[0].contiguous().clone();
    all_reduce(g, dy);
    return {dy, at::Tensor()};
  }
};

}  // namespace

extern "C" {

// The process group for CUDA tensors: NCCL, when this build has it.
c10::intrusive_ptr<c10d::Backend> nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                             std::chrono::milliseconds timeout) {
#ifdef NPE_WITH_NCCL
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
  throw std::runtime_error(
      "this npe was built without NCCL, which data-parallel training on CUDA needs: build with --features cuda "
      "against a CUDA libtorch (NPE_TORCH_FULL=1 scripts/libtorch.sh), or train on the CPU (Gloo)");
#endif
}

// Join a group of `world` processes: the TCPStore at host:port (served by this process when
// `serve`), keys under `prefix`, a Gloo (CPU) or NCCL (`cuda`) process group whose operations
// fail after `timeout_ms`.
int npe_group_new(const char* host, int port, int rank, int world, int serve, int cuda, const char* prefix,
                  int timeout_ms, void** out, char** err) {
  NPE_TRY({
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = serve != 0;
    o.numWorkers = world;
    o.waitWorkers = false;
    o.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    auto base = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    c10::intrusive_ptr<c10d::Backend> pg;
    if (cuda != 0) {
      pg = nccl_group(c10::make_intrusive<c10d::PrefixStore>("nccl", base), rank, world, timeout);
    } else {
      auto opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
      opts->threads = 1;
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", base), rank,
                                                       world, opts);
    }
    auto* g = new Group{c10::make_intrusive<c10d::PrefixStore>("npe", base), pg, timeout};
    *out = g;
  })
}

// c10's own log lines (a peer that closed its socket, a connect retry, with C++ stack traces)
// from `level` on: 3 (fatal only: npe reports every failure itself) or 1 (for NPE_LOG=debug).
void npe_c10_log_level(int level) { FLAGS_caffe2_log_level = level; }

void npe_group_free(void* group) { delete static_cast<Group*>(group); }

// Whether this build has NCCL (data-parallel training on CUDA tensors).
int npe_has_nccl() {
#ifdef NPE_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

// In-place sum over ranks of a contiguous tensor.
int npe_group_all_reduce(void* group, void* tensor, char** err) {
  NPE_TRY(all_reduce(static_cast<Group*>(group), *static_cast<at::Tensor*>(tensor)))
}

// In-place copy of rank `root`'s tensor to every rank.
int npe_group_broadcast(void* group, void* tensor, int root, char** err) {
  NPE_TRY({
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    g->pg->broadcast(ts, o)->wait(g->timeout);
  })
}

// `*out = new Tensor(sum over ranks of x)`, differentiable (its gradient is summed over ranks).
int npe_group_all_reduce_autograd(void* group, void* tensor, void** out, char** err) {
  NPE_TRY({
    auto y = AllReduceSum::apply(*static_cast<at::Tensor*>(tensor), reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(y);
  })
}

int npe_group_store_set(void* group, const char* key, const uint8_t* value, size_t len, char** err) {
  NPE_TRY(static_cast<Group*>(group)->store->set(key, std::vector<uint8_t>(value, value + len)))
}

// Whether `key` is set (never blocks).
int npe_group_store_check(void* group, const char* key, int* present, char** err) {
  NPE_TRY(*present = static_cast<Group*>(group)->store->check({key}) ? 1 : 0)
}

// Wait up to `timeout_ms` for `key`, then `*out`/`*len` = its value (malloc'd).
int npe_group_store_get(void* group, const char* key, int timeout_ms, uint8_t** out, size_t* len, char** err) {
  NPE_TRY({
    auto* g = static_cast<Group*>(group);
    g->store->wait({key}, std::chrono::milliseconds(timeout_ms));
    auto v = g->store->get(key);
    *len = v.size();
    *out = static_cast<uint8_t*>(std::malloc(v.size() + 1));
    if (!v.empty()) std::memcpy(*out, v.data(), v.size());
  })
}

}  // extern "C"
