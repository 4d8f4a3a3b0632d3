"""``python -m icrm_sgl.cli``: the same as the ``icrm-sgl`` command."""

from icrm_sgl.cli import main

main()
