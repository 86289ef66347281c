"""Topic names and the pydantic schemas of every message on them."""
