"""Member cards: one member across stores and channels, tags, points, orders, bindings."""
