// A minimal dense tensor: a dtype tag, a shape and contiguous, 64-byte aligned storage shared between
// views. Views exist only where they are free (reshape, a range of the leading dimension); everything
// else is an explicit copy. Compute runs in F32 (F64 for gradient checks, I64 for ids and labels); the
// other dtypes exist so checkpoints round-trip exactly and are converted with to().
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace mega {

enum class DType { F32, F64, I64, I32, F16, BF16, Bool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // safetensors spelling: "F32", "I64", ...

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& shape);

// Owns (or borrows, for memory-mapped files) one byte buffer. `keep_alive` holds whatever must outlive
// the pointer: the aligned allocation itself or the mapping of a file.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<void> keep_alive;
  static std::shared_ptr<Storage> allocate(size_t bytes);  // 64-byte aligned, uninitialised
};

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor scalar(double value, DType dtype = DType::F32);  // 0-d
  static Tensor from(const std::vector<float>& values, const Shape& shape);
  static Tensor from(const std::vector<double>& values, const Shape& shape);
  static Tensor from(const std::vector<int64_t>& values, const Shape& shape);
  // Wraps existing bytes without copying; `owner` keeps them alive (used for mmap'd safetensors).
  static Tensor wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  void* raw() const { return static_cast<char*>(storage_->data) + offset_bytes_; }
  template <class T> T* data() const {
    MEGA_DCHECK(dtype_ == dtype_of<T>(), "tensor holds ", dtype_name(dtype_), ", accessed as ",
                dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }
  // Element i of the flat buffer converted to double, for tests and small reads; not for hot loops.
  double at(int64_t flat_index) const;
  double item() const;  // the single element of a one-element tensor

  // Views (share storage).
  Tensor reshape(const Shape& shape) const;  // one dimension may be -1
  Tensor narrow0(int64_t begin, int64_t end) const;  // rows [begin, end) of the leading dimension
  Tensor operator[](int64_t i) const;  // row i of the leading dimension, one fewer dimension

  // Copies.
  Tensor clone() const;
  Tensor to(DType dtype) const;  // converts; a clone if the dtype is already `dtype`
  void copy_from(const Tensor& source);  // same shape and numel; converts dtype
  void fill(double value);
  std::vector<double> to_vector() const;
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
};

// Runs a kernel templated on float/double for a tensor's dtype:
//   dispatch_floating(x.dtype(), "gelu", [&]<class T>() { kernel<T>(x.data<T>(), ...); });
template <class F>
decltype(auto) dispatch_floating(DType dtype, const char* op, F&& body) {
  if (dtype == DType::F32) return body.template operator()<float>();
  if (dtype == DType::F64) return body.template operator()<double>();
  fail("[", op, "] expects a F32 or F64 tensor, got ", dtype_name(dtype));
}

float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);  // round to nearest even
float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);  // round to nearest even

}  // namespace mega
