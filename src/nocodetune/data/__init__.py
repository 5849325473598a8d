"""Versioned datasets and file readers: a service layer."""
