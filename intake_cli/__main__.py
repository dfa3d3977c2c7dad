"""``python -m intake_cli``: the ``intake`` command without the console script."""

from intake_cli.main import main

main()
