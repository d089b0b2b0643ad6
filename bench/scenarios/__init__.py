"""One module per benchmark scenario, each with ``run(state)``; bench/run.py runs them in order."""
