import { describe, expect, it } from "vitest";
import type { LogLevel } from "../src/log.js";
import { createLogger, formatLine, parseLogLevel } from "../src/log.js";

const PLATFORM_KEYS = ["time", "level", "service", "tenant_id", "run_id", "message"];

function capture(level?: LogLevel) {
  const lines: string[] = [];
  const logger = createLogger({
    write: (line) => lines.push(line),
    clock: () => new Date(Date.UTC(2026, 11, 1, 18, 30, 0, 123)),
    version: "3f2c1ab",
    level,
  });
  return { lines, logger };
}

describe("JSON log lines", () => {
  it("start with the platform keys, in order, then the version and the event's fields", () => {
    const { lines, logger } = capture();
    logger.info("run enqueued", { tenant_id: "t-1", run_id: "r-1", workflow_id: "w-1" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
    const entry = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(Object.keys(entry)).toEqual([...PLATFORM_KEYS, "version", "workflow_id"]);
    expect(entry).toEqual({
      time: "2026-12-01T18:30:00.123Z",
      level: "INFO",
      service: "api",
      tenant_id: "t-1",
      run_id: "r-1",
      message: "run enqueued",
      version: "3f2c1ab",
      workflow_id: "w-1",
    });
  });

  it("writes null for an absent tenant, run or message", () => {
    const { lines, logger } = capture();
    logger.log("WARNING", null);
    logger.error("", { tenant_id: undefined });
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry.tenant_id).toBeNull();
      expect(entry.run_id).toBeNull();
      expect(entry.message).toBeNull();
    }
    expect(lines.map((l) => (JSON.parse(l) as { level: string }).level)).toEqual(["WARNING", "ERROR"]);
  });

  it("time is RFC 3339 in UTC with milliseconds", () => {
    const line = formatLine("INFO", "x", {}, new Date(0));
    expect(line.time).toBe("1970-01-01T00:00:00.000Z");
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("an event's fields never overwrite the platform keys", () => {
    const line = formatLine("INFO", "real", { service: "spoof", level: "DEBUG", time: "x", message: "y" });
    expect([line.service, line.level, line.message]).toEqual(["api", "INFO", "real"]);
    expect(line.time).not.toBe("x");
  });

  it("drops lines below the configured level", () => {
    const { lines, logger } = capture("WARNING");
    logger.debug("no");
    logger.info("no");
    logger.warning("yes");
    expect(lines.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(["yes"]);
  });
});

describe("parseLogLevel", () => {
  it("defaults to INFO and ignores case", () => {
    expect(parseLogLevel(undefined)).toBe("INFO");
    expect(parseLogLevel(" debug ")).toBe("DEBUG");
  });

  it("rejects unknown levels", () => {
    expect(() => parseLogLevel("LOUD")).toThrow(/LOG_LEVEL must be one of/);
  });
});
