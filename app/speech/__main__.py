"""`python -m app.speech '<settings JSON>'`: the ASR child process (see app.speech.child)."""

import sys

from app.speech.child import main

sys.exit(main(sys.argv))
