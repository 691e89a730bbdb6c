import { PrismaPg } from "@prisma/adapter-pg";
import { Prisma, PrismaClient } from "@prisma/client";
import type { Tenant } from "@prisma/client";
import { normalizeSlug } from "./slug.js";

/**
 * PrismaClient for the app. The generator uses engineType = "client", so the
 * client needs a driver adapter; PrismaPg wraps a node-postgres pool.
 * Constructing it does not connect: the pool connects on the first query.
 */
export function createPrismaClient(databaseUrl: string | undefined = process.env.DATABASE_URL): PrismaClient {
  if (!databaseUrl) {
    throw new Error("DATABASE_URL is not set");
  }
  const adapter = new PrismaPg({ connectionString: databaseUrl });
  return new PrismaClient({ adapter });
}

/** Data for a new tenant, with the slug derived from the name if not given. */
export function tenantCreateInput(name: string, slug?: string): Prisma.TenantCreateInput {
  const trimmed = name.trim();
  if (trimmed.length === 0) {
    throw new Error("tenant name must not be empty");
  }
  return { name: trimmed, slug: normalizeSlug(slug ?? trimmed) };
}

export function createTenant(db: PrismaClient, name: string, slug?: string): Promise<Tenant> {
  return db.tenant.create({ data: tenantCreateInput(name, slug) });
}

/** Latest runs of a workflow, newest first (served by the workflow_id, created_at index). */
export function latestRuns(db: PrismaClient, workflowId: string, take = 20) {
  return db.workflowRun.findMany({
    where: { workflowId },
    orderBy: { createdAt: "desc" },
    take,
  });
}
