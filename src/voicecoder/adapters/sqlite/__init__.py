"""SQLite: the durable session store (`state_store`) and the durable update inbox (`inbox`)."""
