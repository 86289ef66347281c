"""The IO-free core: plain functions over pydantic models, testable without Kafka."""
