// How the shim reports C++ exceptions to Rust: as a malloc'd message the Rust side frees.
#pragma once
#include <cstdlib>
#include <cstring>
#include <exception>

namespace npe {
inline char* copy_message(const char* what) {
  size_t n = std::strlen(what) + 1;
  char* p = static_cast<char*>(std::malloc(n));
  if (p != nullptr) std::memcpy(p, what, n);
  return p;
}
}  // namespace npe

// Run `body`; return 0, or 1 with `*err` set to the exception's message.
#define NPE_TRY(...)                         \
  try {                                      \
    __VA_ARGS__;                             \
    return 0;                                \
  } catch (const std::exception& e) {        \
    *err = npe::copy_message(e.what());      \
    return 1;                                \
  }
