"""Pydantic models: what the API accepts and answers, and what the store keeps."""
