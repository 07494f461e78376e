"""backend: keeps the store's sites equal to the inventory's active rows."""
