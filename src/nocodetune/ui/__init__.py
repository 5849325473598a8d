"""The web UI: Jinja2 pages and small scripts that call only the public REST API."""
