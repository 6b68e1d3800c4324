"""Commands above the run: inbox, national batch, settlement, comparisons, explain, verify, notices and the levy year."""
