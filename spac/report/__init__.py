"""`spac report`'s reading of a corpus folder, its statistics and its page (the command is spac/cli/report.py)."""
