import { describe, expect, it } from "vitest";
import { InvalidSlugError, isValidSlug, MAX_SLUG_LENGTH, normalizeSlug } from "../src/slug.js";

describe("normalizeSlug", () => {
  it.each([
    ["Acme", "acme"],
    ["  Acme Corp  ", "acme-corp"],
    ["Ünïcode Café & Co.", "unicode-cafe-co"],
    ["foo___bar--baz", "foo-bar-baz"],
    ["--Already-Slugged--", "already-slugged"],
    ["Team 42", "team-42"],
    ["ｆｕｌｌｗｉｄｔｈ", "fullwidth"],
  ])("%j -> %j", (input, expected) => {
    expect(normalizeSlug(input)).toBe(expected);
  });

  it("is idempotent", () => {
    const once = normalizeSlug("Wörmhole Labs, Inc.");
    expect(normalizeSlug(once)).toBe(once);
    expect(isValidSlug(once)).toBe(true);
  });

  it("caps the length at a DNS label without a trailing hyphen", () => {
    const slug = normalizeSlug(`${"a".repeat(62)} b`);
    expect(slug).toBe("a".repeat(62));
    expect(normalizeSlug("x".repeat(200))).toHaveLength(MAX_SLUG_LENGTH);
  });

  it("rejects input without letters or digits", () => {
    expect(() => normalizeSlug("")).toThrow(InvalidSlugError);
    expect(() => normalizeSlug(" -- !!! ")).toThrow(/no letters or digits/);
    expect(() => normalizeSlug("日本語")).toThrow(InvalidSlugError);
  });

  it("rejects reserved slugs", () => {
    expect(() => normalizeSlug("API")).toThrow(/reserved/);
    expect(() => normalizeSlug("www")).toThrow(InvalidSlugError);
  });
});

describe("isValidSlug", () => {
  it("accepts canonical slugs", () => {
    expect(isValidSlug("acme")).toBe(true);
    expect(isValidSlug("acme-2")).toBe(true);
    expect(isValidSlug("a".repeat(MAX_SLUG_LENGTH))).toBe(true);
  });

  it.each(["", "Acme", "-acme", "acme-", "ac--me", "ac me", "a".repeat(MAX_SLUG_LENGTH + 1), "admin"])(
    "rejects %j",
    (slug) => {
      expect(isValidSlug(slug)).toBe(false);
    },
  );
});
