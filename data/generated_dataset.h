// Datasets that a generator writes (ListOps now, any synthetic task later), kept safe on disk: the
// files are generated into a temporary sibling folder, a completion marker DIR/.generated.json records
// the generator's name, its settings and the files, and the folder is renamed into place. So a kill or
// a full disk while generating never leaves a truncated file under the dataset's name, and a folder
// generated with other settings, or holding files the generator did not write, is refused instead of
// silently used or overwritten.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mega {

constexpr const char* kGeneratedMarker = ".generated.json";

struct GeneratedDataset {
  std::string generator;           // e.g. "listops"
  nlohmann::json settings;         // a flat object: every setting that changes the files
  std::vector<std::string> files;  // the names `write` creates (files, or folders of files)
  std::function<void(const std::string& folder)> write;  // writes `files` into an existing, empty folder
};

// True when `dir` holds this generator's complete output with these settings; false when `dir` holds
// none of it (missing, empty, or only unrelated files). Anything else is an error naming `dir`: one of
// the files without the marker (files not written by the generator are never overwritten), a marker
// of another generator or of other settings (each differing setting named), or a file the marker
// lists but the folder lacks.
// Held around generated_dataset_ready + generate_dataset: an flock on the sibling ".NAME.lock", so two
// runs sharing one data.dir do not generate into it at once; the second waits (saying so) and then
// finds the first one's complete output.
class GenerationLock {
 public:
  explicit GenerationLock(const std::string& dir);
  ~GenerationLock();
  GenerationLock(const GenerationLock&) = delete;
  GenerationLock& operator=(const GenerationLock&) = delete;

 private:
  int fd_ = -1;
};

bool generated_dataset_ready(const std::string& dir, const GeneratedDataset& dataset);

// Generates `dataset` into `dir`, which generated_dataset_ready found without it: into the sibling
// ".NAME.generating", then the marker, then a rename into place (into an existing folder with other
// files, file by file with the marker last). A leftover temporary folder of a killed try is replaced.
void generate_dataset(const std::string& dir, const GeneratedDataset& dataset);

}  // namespace mega
