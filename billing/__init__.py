"""Money: the plans catalogue, the credits ledger's rules, ClickBank (notifications, pay links,
upsell flows)."""
