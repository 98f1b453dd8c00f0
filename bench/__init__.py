"""`weft bench`: the benchmark suite, run against a real weft server on the embedded PostgreSQL.

Modules: `options` (the command's options), `suite` (runs the scenarios, prints the report),
`server` (a `weft serve` subprocess), `graphs` (the DAG shapes), `scenarios` (what is measured
against weft), `load_driver` (the webhook load, in its own process), `floor` (the same shapes
on a bare scheduler), `report` (targets, the table, JSON), `stats` (medians, percentiles).
"""
