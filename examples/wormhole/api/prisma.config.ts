import { PrismaPg } from "@prisma/adapter-pg";
import { defineConfig } from "prisma/config";

// Prisma CLI configuration (Prisma 6.19).
//
// `engine: "js"` makes `prisma migrate deploy|status|diff` use the JavaScript
// (Wasm) schema engine, which talks to PostgreSQL through the
// `@prisma/adapter-pg` driver adapter (node-postgres). Together with
// `engineType = "client"` in schema.prisma this means no native Prisma engine
// is ever downloaded.

// The value the migrate commands connect to, as given by the caller.
const databaseUrl = process.env.DATABASE_URL;

// Prisma 6's CLI reads the schema (including `url = env("DATABASE_URL")`)
// before every command to learn the generator's engineType. When that env var
// is missing the read fails, the CLI falls back to engineType "library" and
// tries to download the native query engine, so `prisma generate` breaks on a
// machine without a database URL or internet access. A placeholder keeps the
// schema readable; it is never connected to: the adapter below only uses the
// caller's real DATABASE_URL and fails clearly without it.
process.env.DATABASE_URL ??= "postgresql://placeholder@localhost:5432/placeholder";

// No update check / usage telemetry calls from the CLI (CI has no internet).
process.env.CHECKPOINT_DISABLE ??= "1";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: {
    path: "prisma/migrations",
  },
  experimental: {
    adapter: true,
  },
  engine: "js",
  async adapter() {
    if (!databaseUrl) {
      throw new Error(
        "DATABASE_URL is not set (e.g. postgresql://wormhole:wormhole@localhost:5432/wormhole)",
      );
    }
    // allowExitOnIdle: idle pool connections must not keep the CLI alive
    // (pg's default idleTimeoutMillis would add ~10 s to every command).
    return new PrismaPg({ connectionString: databaseUrl, allowExitOnIdle: true });
  },
});
