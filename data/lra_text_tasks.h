// The task rows of LRA Text (IMDB reviews, byte level, 2 classes) and Retrieval (AAN citation pairs, byte
// level, 2 classes), over the release loaders of data/text_tasks.h. With data.generate and a data.dir that
// lacks the release, either row writes the State of the Union stand-in there first (data/sotu.h, as
// `mega lra-data` does), so both train offline after one npm fetch.
#pragma once
#include "data/task.h"

namespace mega {

// data.task: text. Keys data.text.{format, append_eos, val_fraction, val_seed, sotu_passage_length,
// sotu_seed, sotu_cache}.
Task text_task();
// data.task: retrieval. Keys data.retrieval.{append_eos, sotu_passage_length, sotu_seed, sotu_pairs,
// sotu_cache}. The release's eval split is the val split.
Task retrieval_task();

}  // namespace mega
