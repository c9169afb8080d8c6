from app.cli.main import cli

cli()
