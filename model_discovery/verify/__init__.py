"""The verification engine: data, tokenizer, trainer, evaluation, fitness (docs/architecture.md, "Verification")."""
