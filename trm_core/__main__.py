from trm_core.cli import entry

entry()
