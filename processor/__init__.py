"""The stream processor: the Faust app, its agents, the definitions replica and the admin API.

``processor.core`` is the pure part (matching, conditions, rendering, command building);
everything else here is a thin IO shell around it.
"""
