"""The affiliate program: membership, referral links, attribution (commissions and payouts
build on it). Pure rules in :mod:`affiliates.rules`; storage in :mod:`store.affiliates`."""
