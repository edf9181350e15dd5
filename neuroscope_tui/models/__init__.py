"""Turn a model name into a loaded (model, tokenizer): hub id, local folder, .gguf, alias."""
