"""The knowledge engine: BM25 search (``bm25s``) over the library — paper notes (``library/papers/*.md``),
reference designs (their README and summary) and unit docs — with optional online sources (arXiv) that time out
quickly and fail soft."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import bm25s

from model_discovery.design.library import design_meta, design_names, library_root, unit_catalogue

logger = logging.getLogger(__name__)
ARXIV_API = "https://export.arxiv.org/api/query"


@dataclass(frozen=True)
class Document:
    kind: str  # paper | design | unit | arxiv
    name: str
    text: str


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float


def library_documents() -> list[Document]:
    root = library_root()
    docs = [Document("paper", p.stem, p.read_text()) for p in sorted((root / "papers").glob("*.md"))]
    for name in design_names():
        meta = design_meta(name)
        readme = root / "designs" / name / "README.md"
        text = f"{meta.title}. {meta.summary} Tags: {', '.join(meta.tags)}. Origin: {meta.origin}."
        docs.append(Document("design", name, text + ("\n" + readme.read_text() if readme.is_file() else "")))
    catalogue = unit_catalogue()
    for name in catalogue.names():
        decl = catalogue.get(name).decl
        if decl:
            docs.append(Document("unit", name, f"{name} ({decl.slot}, {decl.complexity or 'n/a'}): {decl.doc} "
                                               f"Tags: {', '.join(decl.tags)}."))
    return docs


class KnowledgeBase:
    """``search(query, k)`` over documents (default: the library's)."""

    def __init__(self, documents: list[Document] | None = None):
        self.documents = documents if documents is not None else library_documents()
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize([f"{d.name} {d.text}" for d in self.documents], show_progress=False),
                         show_progress=False)

    def search(self, query: str, k: int = 5, kinds: set[str] | None = None) -> list[Hit]:
        tokens = bm25s.tokenize([query], show_progress=False)
        n = len(self.documents)
        ids, scores = self.index.retrieve(tokens, k=n, show_progress=False)
        hits = [Hit(self.documents[i], float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]
        return [h for h in hits if kinds is None or h.document.kind in kinds][:k]


@lru_cache(maxsize=1)
def default_knowledge() -> KnowledgeBase:
    return KnowledgeBase()


def arxiv_search(query: str, k: int = 5, timeout: float = 3.0) -> list[Document]:
    """Titles and abstracts from arXiv; an empty list when offline, slow or rate-limited (logged, not raised)."""
    import xml.etree.ElementTree as ET

    import httpx

    try:
        response = httpx.get(ARXIV_API, params={"search_query": f"all:{query}", "max_results": k}, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.info("arXiv unavailable (%s); using the library only", exc)
        return []
    ns = {"a": "http://www.w3.org/2005/Atom"}
    docs = []
    for entry in ET.fromstring(response.text).findall("a:entry", ns):
        title = (entry.findtext("a:title", "", ns) or "").strip()
        docs.append(Document("arxiv", title, (entry.findtext("a:summary", "", ns) or "").strip()))
    return docs
