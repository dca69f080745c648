// Errors and checks shared by every layer. MEGA_CHECK stays on in Release: it guards user-facing
// input (shapes, files, configs); MEGA_DCHECK guards hot-loop invariants and is free in Release.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mega {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: fail("[linear] x has ", n, " columns").
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

}  // namespace mega

#define MEGA_CHECK(cond, ...)            \
  do {                                   \
    if (!(cond)) ::mega::fail(__VA_ARGS__); \
  } while (0)

#ifdef NDEBUG
#define MEGA_DCHECK(cond, ...) ((void)0)
#else
#define MEGA_DCHECK(cond, ...) MEGA_CHECK(cond, __VA_ARGS__)
#endif
