"""Local stand-ins for the external services the bot talks to, for tests, demos and load runs."""
