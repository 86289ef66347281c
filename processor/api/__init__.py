"""The admin API (JSON over HTTP, bearer tokens) and the worker's ``/health``.

Views live by subject: ``workflows``, ``runs``, ``tokens``, ``openapi``; ``base`` has what
they share; ``server`` registers them with the app, with ``/health``. Every view is declared
once in ``views.ROUTES``, which both the app and the OpenAPI document read.
"""
