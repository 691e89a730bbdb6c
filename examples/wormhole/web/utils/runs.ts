import { RUN_STATUSES, type RunStatus } from '~/types/workflow'

export type BadgeColor = 'grey' | 'blue' | 'green' | 'red' | 'amber'

export interface StatusMeta {
  label: string
  color: BadgeColor
  /** True once the run can no longer change state. */
  final: boolean
}

const STATUS_META: Record<RunStatus, StatusMeta> = {
  queued: { label: 'Queued', color: 'grey', final: false },
  in_progress: { label: 'Running', color: 'blue', final: false },
  success: { label: 'Passed', color: 'green', final: true },
  failure: { label: 'Failed', color: 'red', final: true },
  cancelled: { label: 'Cancelled', color: 'amber', final: true },
  skipped: { label: 'Skipped', color: 'grey', final: true },
}

const UNKNOWN: StatusMeta = { label: 'Unknown', color: 'grey', final: false }

export function isRunStatus(value: unknown): value is RunStatus {
  return typeof value === 'string' && (RUN_STATUSES as readonly string[]).includes(value)
}

/** Maps a run status (possibly an unexpected string from an API) to its badge label/colour. */
export function statusMeta(status: string): StatusMeta {
  return isRunStatus(status) ? STATUS_META[status] : UNKNOWN
}

/**
 * Formats a run duration for humans:
 *   850 -> "850ms", 45_000 -> "45s", 125_000 -> "2m 05s", 3_723_000 -> "1h 02m 03s".
 * null/undefined/negative/non-finite -> "—".
 */
export function formatDuration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '—'
  if (ms < 1000) return `${Math.round(ms)}ms`

  const totalSeconds = Math.floor(ms / 1000)
  const hours = Math.floor(totalSeconds / 3600)
  const minutes = Math.floor((totalSeconds % 3600) / 60)
  const seconds = totalSeconds % 60
  const pad = (n: number) => String(n).padStart(2, '0')

  if (hours > 0) return `${hours}h ${pad(minutes)}m ${pad(seconds)}s`
  if (minutes > 0) return `${minutes}m ${pad(seconds)}s`
  return `${seconds}s`
}

/** Counts workflows per status label, in a stable order, skipping empty buckets. */
export function summarizeStatuses(statuses: readonly string[]): { label: string, color: BadgeColor, count: number }[] {
  const counts = new Map<string, { label: string, color: BadgeColor, count: number }>()
  for (const status of statuses) {
    const meta = statusMeta(status)
    const entry = counts.get(meta.label) ?? { label: meta.label, color: meta.color, count: 0 }
    entry.count += 1
    counts.set(meta.label, entry)
  }
  return [...counts.values()].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label))
}
