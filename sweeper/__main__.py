from sweeper.cli import entry

entry()
