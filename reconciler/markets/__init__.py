"""Market signals: in-memory providers here; HTTP clients (Modo, Axle, Elexon) alongside."""
