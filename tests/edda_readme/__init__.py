"""Examples from Edda's README, run as they are written there.

Each file holds one or more of the README's code blocks unchanged; what the README
leaves to the reader (a helper it calls, the ``main()`` that drives the example)
is added around them and marked as such. tests/test_edda_readme.py runs each file
in a fresh process, in a temporary folder (the blocks use ``sqlite:///workflow.db``).
"""
