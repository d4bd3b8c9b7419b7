"""Files copied into an exported Hugging Face folder (remote code, loaded with ``trust_remote_code=True``)."""
