from nocodetune.cli.main import run

run()
