"""The audit packets pages of the Airflow UI (mounted by plugins/metaudit_plugin.py).

- :mod:`metaudit.web.access`: who may see which practice (the configuration's grants);
- :mod:`metaudit.web.catalog`: the packets on disk, filtered and verified;
- :mod:`metaudit.web.context`: the deployment's configuration, store, folder and key;
- :mod:`metaudit.web.app`: the FastAPI app and its routes (docs/packets-ui.md).
"""
