// Semgrep test target for rules/raw-sql.yaml (run with `semgrep --test`); never imported.
import { Prisma, PrismaClient } from "@prisma/client";

const db = new PrismaClient();
const STATUS_QUERY = "SELECT status, count(*) FROM workflow_runs GROUP BY status";

export async function unsafe(email: string, column: string, tenantId: string) {
  // ruleid: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$queryRawUnsafe(`SELECT * FROM users WHERE email = '${email}'`);
  // ruleid: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$executeRawUnsafe("DELETE FROM tenants WHERE id = '" + tenantId + "'");
  const query = `SELECT ${column} FROM users`;
  // ruleid: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$queryRawUnsafe(query);
  // ruleid: wormhole.js.prisma-raw-unsafe-nonliteral
  await this.prisma.$queryRawUnsafe(`SELECT * FROM t ORDER BY ${column}`, tenantId);

  // ruleid: wormhole.js.prisma-raw-nonliteral
  const order = Prisma.raw(column);
  // ruleid: wormhole.js.prisma-raw-nonliteral
  const where = Prisma.raw(`tenant_id = '${tenantId}'`);
  return db.$queryRaw`SELECT * FROM users ${where} ORDER BY ${order}`;
}

export async function safe(email: string, tenantId: string) {
  // ok: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$queryRawUnsafe("SELECT * FROM users WHERE email = $1", email);
  // ok: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$queryRawUnsafe(STATUS_QUERY);
  // ok: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$queryRaw`SELECT * FROM users WHERE email = ${email}`;
  // ok: wormhole.js.prisma-raw-unsafe-nonliteral
  await db.$executeRaw(Prisma.sql`DELETE FROM tenants WHERE id = ${tenantId}`);

  // ok: wormhole.js.prisma-raw-nonliteral
  const order = Prisma.raw("created_at DESC");
  return db.$queryRaw`SELECT * FROM runs ORDER BY ${order}`;
}
