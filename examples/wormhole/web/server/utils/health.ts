export interface HealthPayload {
  status: 'ok'
  version: string
}

/**
 * Body of GET /healthz. The environment is read on every call (not at build
 * time) so that a built image reports the BUILD_SHA it is started with.
 * An unset or blank BUILD_SHA reports "dev".
 */
export function healthPayload(env: Record<string, string | undefined> = process.env): HealthPayload {
  const sha = env.BUILD_SHA?.trim()
  return { status: 'ok', version: sha || 'dev' }
}
