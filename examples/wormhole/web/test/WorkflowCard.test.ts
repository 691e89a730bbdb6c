// @vitest-environment happy-dom
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import WorkflowCard from '~/components/WorkflowCard.vue'
import type { Workflow } from '~/types/workflow'

const base: Workflow = {
  id: 'ci',
  name: 'CI',
  branch: 'main',
  status: 'success',
  durationMs: 125_000,
  startedAt: '2025-01-06T09:12:00Z',
}

describe('WorkflowCard', () => {
  it('shows the name, branch, formatted duration and status badge', () => {
    const wrapper = mount(WorkflowCard, { props: { workflow: base } })

    expect(wrapper.get('h2').text()).toBe('CI')
    expect(wrapper.text()).toContain('main')
    expect(wrapper.get('.card__duration').text()).toBe('2m 05s')

    const badge = wrapper.get('.badge')
    expect(badge.text()).toBe('Passed')
    expect(badge.classes()).toContain('badge--green')
    expect(badge.attributes('data-status')).toBe('success')
  })

  it('renders a running workflow without a duration', () => {
    const wrapper = mount(WorkflowCard, {
      props: { workflow: { ...base, status: 'in_progress', durationMs: null } },
    })

    expect(wrapper.get('.card__duration').text()).toBe('—')
    expect(wrapper.get('.badge').text()).toBe('Running')
    expect(wrapper.get('.badge').classes()).toContain('badge--blue')
  })
})
