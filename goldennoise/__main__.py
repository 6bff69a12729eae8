"""``python -m goldennoise``."""

from goldennoise.cli import main

if __name__ == "__main__":
    main()
