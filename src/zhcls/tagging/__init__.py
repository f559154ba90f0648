"""Span tagging shared by the data readers, the models and the predictor: entities <-> BIO/BIOES tags,
per-character features, Viterbi decoding in numpy, and entity-level metrics. Imports nothing of zhcls
above `text` and `errors`, so readers, models and the torch-free predictor can all use it."""
