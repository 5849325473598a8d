"""The REST face (FastAPI). Routers call services; no business logic here."""
