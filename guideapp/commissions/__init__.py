"""Guide incentives: commission rules, an append-only ledger in fen, clawback and settlement."""
