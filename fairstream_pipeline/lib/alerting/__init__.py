"""Operations: failure alerts, health checks, database-outage detection and run progress."""
