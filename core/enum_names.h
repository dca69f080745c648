// Name tables for enums that are read from text (config.json, recipes): one table per enum, so each
// allowed string is written once, and parsing, printing and the "expected ..." of an error all come
// from it. A value may have aliases; its first entry is the name it is written back as.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mega {

template <class E>
struct EnumName {
  E value;
  std::string_view name;
};

template <class E>
using EnumNames = std::span<const EnumName<E>>;

template <class E>
std::optional<E> enum_from_name(EnumNames<E> names, std::string_view name) {
  for (const EnumName<E>& entry : names)
    if (entry.name == name) return entry.value;
  return std::nullopt;
}

// The canonical (first) name of `value`; "?" for a value outside the table.
template <class E>
std::string_view enum_name(EnumNames<E> names, E value) {
  for (const EnumName<E>& entry : names)
    if (entry.value == value) return entry.name;
  return "?";
}

// Every accepted name, aliases included, in table order.
template <class E>
std::vector<std::string> enum_name_list(EnumNames<E> names) {
  std::vector<std::string> list;
  for (const EnumName<E>& entry : names) list.emplace_back(entry.name);
  return list;
}

// "a, b or c", for error messages.
inline std::string or_list(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i)
    text += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  return text;
}

}  // namespace mega
