"""The money side: the plans catalogue (:mod:`billing.catalogue`) and what is sold from it,
ClickBank's notifications, pay links and upsell flows (``billing.clickbank_*``,
:mod:`billing.upsell_flow`). The credits ledger itself is storage: :mod:`store.credits`."""
