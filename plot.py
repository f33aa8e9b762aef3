"""Training and validation perplexity against tokens seen, from a run's TensorBoard events:
``python plot.py run=RUN_DIR out=curve.png [width=800] [height=500]`` (needs
``pip install -e ".[plot]"``); the work lives in ``elmo_lm.commands.plot``."""

from elmo_lm.commands.plot import main

if __name__ == "__main__":
    main()
