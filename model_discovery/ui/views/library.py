"""Library: the reference designs and units, searchable with the knowledge engine (BM25 over designs, units and
paper notes)."""

import streamlit as st

from model_discovery.agents.knowledge import default_knowledge
from model_discovery.design.library import design_meta, design_names, unit_catalogue

st.title("Library")


@st.cache_resource(show_spinner="indexing the library…")
def knowledge():
    return default_knowledge()


query = st.text_input("Search designs, units and paper notes", placeholder="e.g. linear attention with decay")
if query:
    for hit in knowledge().search(query, 8):
        doc = hit.document
        with st.expander(f"{doc.kind}: {doc.name} (score {hit.score:.2f})"):
            st.markdown(doc.text[:3000])
designs, units = st.tabs(["Reference designs", "Units"])
with designs:
    for name in design_names():
        meta = design_meta(name)
        with st.expander(f"{name} — {meta.title}"):
            st.write(meta.summary)
            st.caption(f"{meta.origin} · root {meta.root} · units {meta.bind} · tags {', '.join(meta.tags)}")
with units:
    catalogue = unit_catalogue()
    for name in catalogue.names():
        decl = catalogue.get(name).decl
        if decl is None:
            continue
        with st.expander(f"{name} [{decl.slot}]"):
            st.write(decl.doc or "")
            st.caption(f"complexity {decl.complexity or '-'}; tags {', '.join(decl.tags) or '-'}; "
                       f"children {dict(decl.children) or '-'}")
