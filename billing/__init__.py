"""The money side: the plans catalogue (:mod:`billing.catalogue`) and what is sold from it.
The credits ledger itself is storage: :mod:`store.credits`."""
