"""One module per command (``main(argv)``); the top-level scripts and the console scripts
call them.
"""
