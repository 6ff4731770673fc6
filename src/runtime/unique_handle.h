// SPDX-License-Identifier: MIT
// UniqueHandle<Traits>: the one move-only owner of a C library handle (an HDF5 id, an MPI or NCCL
// communicator, a CUDA stream or event, a cuDNN descriptor, pinned memory). ggml-cpp.h's
// unique_ptr-with-deleter, generalised to handles that are not pointers (hid_t is an integer, and
// MPI_COMM_NULL is not nullptr), so every owner gets its move code from here instead of writing it.
#pragma once

#include <type_traits>
#include <utility>

namespace dpt {

// Traits says what the handle is and how it is freed:
//   using handle_type = ...;                  // a value type comparable with ==
//   static handle_type null() noexcept;       // the value that owns nothing
//   void close(handle_type h) noexcept;       // frees a non-null h; static or const member;
//                                             // reports failures through a _LOG check macro
// Traits may hold state (how long NCCL may take to finalize); it travels with the handle.
template <typename Traits>
class UniqueHandle {
 public:
  using handle_type = typename Traits::handle_type;

  UniqueHandle() = default;
  // Takes ownership of `handle` (null: owns nothing).
  explicit UniqueHandle(handle_type handle, Traits traits = Traits()) noexcept
      : handle_(handle), traits_(std::move(traits)) {}
  UniqueHandle(UniqueHandle&& other) noexcept
      : handle_(other.release()), traits_(std::move(other.traits_)) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) {
      reset();  // with this handle's own traits, before they are replaced
      traits_ = std::move(other.traits_);
      handle_ = other.release();
    }
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  handle_type get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return !(handle_ == Traits::null()); }
  const Traits& traits() const noexcept { return traits_; }

  // Gives the handle up without freeing it; this owner is then empty.
  [[nodiscard]] handle_type release() noexcept { return std::exchange(handle_, Traits::null()); }
  // Frees the handle owned so far (if any) and owns `handle` instead.
  void reset(handle_type handle = Traits::null()) noexcept {
    const handle_type old = std::exchange(handle_, handle);
    if (!(old == Traits::null())) traits_.close(old);
  }

 private:
  static_assert(std::is_nothrow_move_constructible_v<Traits> &&
                    std::is_nothrow_move_assignable_v<Traits>,
                "UniqueHandle: moving the traits must not throw");
  static_assert(noexcept(std::declval<Traits&>().close(std::declval<handle_type>())),
                "UniqueHandle: Traits::close runs in destructors and must be noexcept");

  handle_type handle_ = Traits::null();
  [[no_unique_address]] Traits traits_{};
};

}  // namespace dpt
