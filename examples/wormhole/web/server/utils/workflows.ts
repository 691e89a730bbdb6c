import type { Workflow } from '../../types/workflow'

/** Static sample data until the app talks to a real backend (runtimeConfig.public.apiBase). */
export const SAMPLE_WORKFLOWS: readonly Workflow[] = [
  { id: 'ci', name: 'CI', branch: 'main', status: 'success', durationMs: 252_000, startedAt: '2025-01-06T09:12:00Z' },
  { id: 'image', name: 'Build image', branch: 'main', status: 'in_progress', durationMs: null, startedAt: '2025-01-06T09:20:00Z' },
  { id: 'e2e', name: 'End-to-end', branch: 'feature/wormhole', status: 'failure', durationMs: 3_723_000, startedAt: '2025-01-06T07:01:00Z' },
  { id: 'docs', name: 'Docs', branch: 'main', status: 'skipped', durationMs: 850, startedAt: '2025-01-06T08:00:00Z' },
]
