import { describe, expect, it } from 'vitest'
import { RUN_STATUSES } from '~/types/workflow'
import { formatDuration, isRunStatus, statusMeta, summarizeStatuses } from '~/utils/runs'

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [850, '850ms'],
    [999.6, '1000ms'],
    [1000, '1s'],
    [45_000, '45s'],
    [59_999, '59s'],
    [60_000, '1m 00s'],
    [125_000, '2m 05s'],
    [3_600_000, '1h 00m 00s'],
    [3_723_000, '1h 02m 03s'],
    [90_061_000, '25h 01m 01s'],
  ])('formats %d ms as %s', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected)
  })

  it.each([null, undefined, -1, Number.NaN, Number.POSITIVE_INFINITY])('renders %s as a dash', (ms) => {
    expect(formatDuration(ms)).toBe('—')
  })
})

describe('statusMeta', () => {
  it('maps known statuses to label and colour', () => {
    expect(statusMeta('success')).toEqual({ label: 'Passed', color: 'green', final: true })
    expect(statusMeta('failure')).toEqual({ label: 'Failed', color: 'red', final: true })
    expect(statusMeta('in_progress')).toEqual({ label: 'Running', color: 'blue', final: false })
    expect(statusMeta('cancelled').color).toBe('amber')
  })

  it('has a distinct label for every declared status', () => {
    const labels = RUN_STATUSES.map(s => statusMeta(s).label)
    expect(new Set(labels).size).toBe(RUN_STATUSES.length)
    expect(labels).not.toContain('Unknown')
  })

  it('falls back to Unknown for unexpected values', () => {
    expect(statusMeta('exploded')).toEqual({ label: 'Unknown', color: 'grey', final: false })
    expect(statusMeta('')).toEqual({ label: 'Unknown', color: 'grey', final: false })
  })

  it('does not treat inherited object keys as statuses', () => {
    expect(isRunStatus('toString')).toBe(false)
    expect(isRunStatus(42)).toBe(false)
    expect(isRunStatus('queued')).toBe(true)
  })
})

describe('summarizeStatuses', () => {
  it('counts per label, most frequent first, then alphabetically', () => {
    expect(summarizeStatuses(['success', 'failure', 'success', 'queued', 'weird'])).toEqual([
      { label: 'Passed', color: 'green', count: 2 },
      { label: 'Failed', color: 'red', count: 1 },
      { label: 'Queued', color: 'grey', count: 1 },
      { label: 'Unknown', color: 'grey', count: 1 },
    ])
  })

  it('returns an empty list for no runs', () => {
    expect(summarizeStatuses([])).toEqual([])
  })
})
