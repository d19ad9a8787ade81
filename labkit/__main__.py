from labkit.cli import app

app()
