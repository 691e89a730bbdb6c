import { describe, expect, it } from "vitest";
import { createPrismaClient, tenantCreateInput } from "../src/db.js";

// No database is needed: PrismaClient (engineType "client" + PrismaPg adapter)
// does not connect until the first query.
describe("createPrismaClient", () => {
  it("requires DATABASE_URL", () => {
    expect(() => createPrismaClient("")).toThrow(/DATABASE_URL/);
  });

  it("builds a client with the generated model delegates", async () => {
    const db = createPrismaClient("postgresql://wormhole:wormhole@127.0.0.1:1/wormhole");
    try {
      expect(typeof db.tenant.create).toBe("function");
      expect(typeof db.user.findMany).toBe("function");
      expect(typeof db.workflow.update).toBe("function");
      expect(typeof db.workflowRun.findMany).toBe("function");
    } finally {
      await db.$disconnect();
    }
  });
});

describe("tenantCreateInput", () => {
  it("derives the slug from the name", () => {
    expect(tenantCreateInput("  Acme Rockets ")).toEqual({ name: "Acme Rockets", slug: "acme-rockets" });
  });

  it("normalises an explicit slug", () => {
    expect(tenantCreateInput("Acme", "ACME HQ")).toEqual({ name: "Acme", slug: "acme-hq" });
  });

  it("rejects empty names", () => {
    expect(() => tenantCreateInput("   ")).toThrow(/empty/);
  });
});
