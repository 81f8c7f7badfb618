import sys

from sigma_grpc.cli import main

sys.exit(main())
