"""`python -m keras_mixkd.export`: the export's child steps (`keras_mixkd.export.child`)."""

import sys

from keras_mixkd.export.child import child_main

if __name__ == "__main__":
    sys.exit(child_main())
