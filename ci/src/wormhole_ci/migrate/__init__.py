"""Database migrations: one serialised, gated, backed-up `prisma migrate deploy` per job."""
