import { defineEventHandler, setResponseHeader } from 'h3'
import { healthPayload } from '../utils/health'

export default defineEventHandler((event) => {
  setResponseHeader(event, 'cache-control', 'no-store')
  return healthPayload()
})
