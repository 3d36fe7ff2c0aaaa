"""Reading hostile HTML safely: charset detection and the nesting cap."""
