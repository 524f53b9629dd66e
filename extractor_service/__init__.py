"""The extractor service: encoded photo in, local features (locations + descriptors) out."""
