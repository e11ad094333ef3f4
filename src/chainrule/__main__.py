"""``python -m chainrule`` runs the command line, like the ``chainrule`` command."""

import sys

from chainrule.cli import command

if __name__ == "__main__":
    sys.exit(command())
