"""The web app (Streamlit) for people who do not use the CLI: try the served model on one record
or a CSV, watch its traffic and drift, compare experiments.

The app never deserializes a model for predictions: it asks the running service over HTTP
(``client``), and reads the model's feature schema from the service's ``/model``. The modules
here are the app's pure core (``forms``, ``batch``, ``analytics``, ``experiments``, ``drift``);
``main.py`` and ``views/`` are the thin Streamlit shell that ``streamlit run`` executes.
"""
