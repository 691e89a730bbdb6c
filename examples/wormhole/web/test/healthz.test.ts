import { createApp, toWebHandler } from 'h3'
import { afterEach, describe, expect, it, vi } from 'vitest'
import healthzHandler from '~/server/routes/healthz'
import { healthPayload } from '~/server/utils/health'

describe('healthPayload', () => {
  it('reports BUILD_SHA as the version', () => {
    expect(healthPayload({ BUILD_SHA: 'abc1234' })).toEqual({ status: 'ok', version: 'abc1234' })
  })

  it('falls back to "dev" when BUILD_SHA is unset or blank', () => {
    expect(healthPayload({})).toEqual({ status: 'ok', version: 'dev' })
    expect(healthPayload({ BUILD_SHA: '' })).toEqual({ status: 'ok', version: 'dev' })
    expect(healthPayload({ BUILD_SHA: '  ' })).toEqual({ status: 'ok', version: 'dev' })
  })
})

describe('GET /healthz', () => {
  const app = createApp().use('/healthz', healthzHandler)
  const handle = toWebHandler(app)

  afterEach(() => {
    vi.unstubAllEnvs()
  })

  it('answers ok with the BUILD_SHA read at request time', async () => {
    vi.stubEnv('BUILD_SHA', 'first')
    const first = await handle(new Request('http://localhost/healthz'))
    expect(first.status).toBe(200)
    expect(first.headers.get('content-type')).toMatch(/application\/json/)
    expect(first.headers.get('cache-control')).toBe('no-store')
    expect(await first.json()).toEqual({ status: 'ok', version: 'first' })

    vi.stubEnv('BUILD_SHA', 'second')
    const second = await handle(new Request('http://localhost/healthz'))
    expect(await second.json()).toEqual({ status: 'ok', version: 'second' })
  })

  it('reports "dev" without BUILD_SHA', async () => {
    vi.stubEnv('BUILD_SHA', undefined)
    const res = await handle(new Request('http://localhost/healthz'))
    expect(await res.json()).toEqual({ status: 'ok', version: 'dev' })
  })
})
