"""The verification engine: data, tokenizer, trainer, evaluation, fitness (DESIGN.md §5)."""
