"""tokenizer.json from slow tokenizer files, proven against the tokenizer class's semantics."""
