"""SQLite storage: schema, repositories, persistence. Knows nothing of Telegram."""
