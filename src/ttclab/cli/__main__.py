import sys

from ttclab.cli import main

sys.exit(main())
