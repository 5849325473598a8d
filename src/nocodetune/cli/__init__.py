"""The command-line face: parse, call services, render. No business logic here."""
