export const RUN_STATUSES = [
  'queued',
  'in_progress',
  'success',
  'failure',
  'cancelled',
  'skipped',
] as const

export type RunStatus = (typeof RUN_STATUSES)[number]

export interface Workflow {
  id: string
  name: string
  branch: string
  status: RunStatus
  /** Duration of the latest run in milliseconds; null while it has not finished. */
  durationMs: number | null
  /** ISO-8601 timestamp of the latest run's start. */
  startedAt: string
}
