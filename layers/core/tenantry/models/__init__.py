"""Pydantic models shared by handlers and logic, one module per domain (tenants, events, chat, usage)."""
