"""Analysis of records: accuracy-vs-cost tables, rendering, plots, run comparison and the CI latency gate."""
