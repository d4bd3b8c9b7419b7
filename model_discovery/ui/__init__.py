"""The Streamlit front-end (``./run_demo.sh``): watch, inspect and steer a discovery run. ``data`` reads a run into
plain tables; ``app`` and ``views/`` render them.

Its packages come with the ``ui`` extra; without one of them, importing any part of the front-end says so."""

from importlib.util import find_spec

for _module in ("streamlit", "plotly", "pandas"):
    if find_spec(_module) is None:
        raise ModuleNotFoundError(f"the front-end needs {_module}: pip install 'model-discovery[ui]'", name=_module)
