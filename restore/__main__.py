import sys

from restore.cli import command

sys.exit(command())
