"""Coupons: templates, wallets, issue by rules, guides and HQ, redemption at the till."""
