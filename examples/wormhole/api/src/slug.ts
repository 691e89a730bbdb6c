/**
 * Tenant slug normalisation.
 *
 * A tenant slug is used in URLs and hostnames (`<slug>.wormhole.example`), so
 * it must be a valid DNS label: lowercase ASCII letters, digits and single
 * hyphens, not starting or ending with a hyphen, at most 63 characters.
 */

export const MAX_SLUG_LENGTH = 63;

/** Slugs that would collide with our own hostnames or routes. */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set([
  "admin",
  "api",
  "app",
  "healthz",
  "internal",
  "status",
  "www",
]);

const SLUG_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export class InvalidSlugError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid tenant slug ${JSON.stringify(input)}: ${reason}`);
    this.name = "InvalidSlugError";
  }
}

/** True when `slug` is already in canonical form and not reserved. */
export function isValidSlug(slug: string): boolean {
  return (
    slug.length > 0 &&
    slug.length <= MAX_SLUG_LENGTH &&
    SLUG_PATTERN.test(slug) &&
    !RESERVED_SLUGS.has(slug)
  );
}

/**
 * Turn free text (typically the tenant's display name) into a slug:
 * "Ünïcode Café & Co." → "unicode-cafe-co".
 *
 * Throws InvalidSlugError when nothing usable is left or the result is reserved.
 */
export function normalizeSlug(input: string): string {
  const slug = input
    .normalize("NFKD")
    // drop the combining marks that NFKD split off accented letters
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, MAX_SLUG_LENGTH)
    .replace(/-+$/, "");

  if (slug.length === 0) {
    throw new InvalidSlugError(input, "no letters or digits");
  }
  if (RESERVED_SLUGS.has(slug)) {
    throw new InvalidSlugError(input, `"${slug}" is reserved`);
  }
  return slug;
}
