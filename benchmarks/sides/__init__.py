"""What each side of a benchmark case runs: in-process setups and the plain reference scripts."""
