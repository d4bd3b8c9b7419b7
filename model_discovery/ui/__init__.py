"""The Streamlit front-end (``./run_demo.sh``): watch, inspect and steer a discovery run. ``data`` reads a run into
plain tables; ``app`` and ``pages/`` render them."""
