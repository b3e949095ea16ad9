"""Allow ``python -m geounet``."""

from geounet.cli import main

main()
