"""The rebalance program of one account: its inputs, objective terms, risk model and the compiled template."""
