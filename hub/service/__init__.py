"""The Polar TEP platform service: a JupyterHub-managed FastAPI app that owns platform state.

It keeps accounts and plans (and, as the platform grows, the usage ledger, processors, runs and datasets) in its own
SQL database, migrated with Alembic, and answers the hub, the server extension and dashboards over HTTP, trusting
JupyterHub tokens and scopes. Run it with ``python -m polartep_hub.service``; the environment it reads is listed in
``__main__.py``. Module map: ``config`` (settings), ``app`` (assembly), ``api`` (routes), ``usage_api`` (usage read API), ``access`` (who may call
what), ``identity``/``hubauth`` (who is calling), ``browser_login`` (OAuth for browsers), ``accounts`` (plans and
entitlements), ``passwords`` (argon2, bounded slots), ``login_throttle`` (password login throttled per client
address), ``rate_limits`` (counters in the database), ``models``/``db``/``migrations`` (storage), ``metrics``, ``security_headers``,
``request_limits``.
"""
