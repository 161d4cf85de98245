"""`python -m keras_mixkd.cli`: the `keras-mixkd` command."""

import sys

from keras_mixkd.cli import main

sys.exit(main())
