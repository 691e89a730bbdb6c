// https://nuxt.com/docs/api/configuration/nuxt-config
export default defineNuxtConfig({
  compatibilityDate: '2025-07-15',

  // Nothing in prepare/typecheck/build may reach the network.
  telemetry: false,
  devtools: { enabled: false },

  app: {
    head: {
      title: 'Wormhole',
      htmlAttrs: { lang: 'en' },
      meta: [{ name: 'viewport', content: 'width=device-width, initial-scale=1' }],
    },
  },

  css: ['~/assets/main.css'],

  // Overridable at runtime with NUXT_PUBLIC_API_BASE.
  runtimeConfig: {
    public: {
      apiBase: 'http://localhost:3000',
    },
  },

  typescript: {
    strict: true,
    // `nuxi typecheck` is run explicitly by CI; don't type-check during dev/build.
    typeCheck: false,
  },
})
