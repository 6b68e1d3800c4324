"""The run's pure stages: decide and allocate, statutory levies, controls, findings, levy rates, and the static analysis of rule files (`allocation check`), which decides its examples with them."""
