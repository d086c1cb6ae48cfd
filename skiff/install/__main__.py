import sys

from skiff.install.main import main

sys.exit(main())
