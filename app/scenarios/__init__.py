"""Conversation scenarios: YAML files of customer turns and expectations, played through
the real pipeline by `python -m app.cli converse` (format: shared/scenarios/README.md)."""
