"""A design's identity: its source with formatting, comments and docstrings normalised away, plus its config."""

from __future__ import annotations

import ast
import hashlib
import json
from typing import Any


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def normalise_source(source: str) -> str:
    """The source as the AST sees it: two files that differ only in layout or comments normalise equal."""
    return ast.unparse(_strip_docstrings(ast.parse(source)))


def content_hash(source: str, config: dict[str, Any] | None = None) -> str:
    """A 16-hex-digit hash of the normalised source and the config (key order does not matter)."""
    payload = normalise_source(source) + "\n" + json.dumps(config or {}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
