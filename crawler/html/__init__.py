"""Reading hostile HTML safely: charset detection and the nesting cap (nesting.py, with the
modules it reads a page with)."""
