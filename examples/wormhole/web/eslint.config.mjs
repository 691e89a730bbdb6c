// ESLint 9 flat config: typescript-eslint + eslint-plugin-vue, for .ts/.mts/.js/.mjs and .vue files.
import js from '@eslint/js'
import { defineConfig, globalIgnores } from 'eslint/config'
import pluginVue from 'eslint-plugin-vue'
import tseslint from 'typescript-eslint'
import vueParser from 'vue-eslint-parser'

export default defineConfig(
  globalIgnores(['node_modules/', '.nuxt/', '.output/', 'dist/', 'coverage/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  pluginVue.configs['flat/recommended'],
  {
    files: ['**/*.vue'],
    languageOptions: {
      parser: vueParser,
      parserOptions: {
        parser: tseslint.parser,
        extraFileExtensions: ['.vue'],
        sourceType: 'module',
      },
    },
  },
  {
    files: ['**/*.{ts,mts,vue}'],
    rules: {
      // Nuxt auto-imports (useFetch, defineNuxtConfig, ...) are globals that TypeScript already checks.
      'no-undef': 'off',
    },
  },
  {
    files: ['pages/**/*.vue', 'layouts/**/*.vue', 'app.vue', 'error.vue'],
    rules: {
      // Nuxt route/layout components are conventionally single-word (index.vue, app.vue).
      'vue/multi-word-component-names': 'off',
    },
  },
)
