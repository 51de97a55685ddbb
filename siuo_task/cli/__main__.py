import sys

from siuo_task.cli.app import main

sys.exit(main())
