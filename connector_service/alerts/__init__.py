"""Anomaly alerts on each install's calls (issue 19, part 3): a detector over the minute
rollups, the alerts it opens and resolves, their API and the loop that runs it."""
