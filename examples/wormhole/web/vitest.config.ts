import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

// Plain Vitest (no Nuxt runtime): the tested code imports what it uses explicitly.
const root = fileURLToPath(new URL('./', import.meta.url))

export default defineConfig({
  plugins: [vue()],
  resolve: {
    alias: {
      '~~': root,
      '~': root,
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
})
