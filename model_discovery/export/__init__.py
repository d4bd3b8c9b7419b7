"""Taking a verified design elsewhere: a Hugging Face folder (:mod:`.hf`) and batch-job specs for Beaker and Slurm
(:mod:`.batch`)."""
