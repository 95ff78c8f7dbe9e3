"""Search orchestration: config, searchers, Pareto logic, Tune driver, tracking, CLI."""
