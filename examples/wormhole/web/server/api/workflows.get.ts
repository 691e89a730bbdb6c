import { defineEventHandler } from 'h3'
import type { Workflow } from '../../types/workflow'
import { SAMPLE_WORKFLOWS } from '../utils/workflows'

export default defineEventHandler((): Workflow[] => [...SAMPLE_WORKFLOWS])
