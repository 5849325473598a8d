"""The AI server manager: start, stop, list and watch servers: a service layer."""
