"""The designer side of discovery: roles with structured outputs (:mod:`.schemas`), their specs
(:mod:`.spec`), the offline designer — genetic programming over the library's unit catalogue — (:mod:`.offline`),
the knowledge engine (:mod:`.knowledge`) and design sessions (:mod:`.session`)."""
