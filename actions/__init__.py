"""Action types: one module each, one interface (``actions.params.ActionType``).

``actions.registry`` maps each ``actions[].type`` of the contract to its module's type.
"""
