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

  // Server stack traces stay readable without source maps (Nitro's node-server output is not
  // minified); skipping them and the gzip size report takes seconds off every image build.
  sourcemap: { server: false, client: false },
  vite: { build: { reportCompressedSize: false } },

  // Reuse the Vue client and server bundles when only server/, public/ or runtime settings
  // changed (cached in node_modules/.cache/nuxt; the image build keeps it in a cache mount).
  experimental: { buildCache: true },

  typescript: {
    strict: true,
    // `nuxi typecheck` is run explicitly by CI; don't type-check during dev/build.
    typeCheck: false,
  },
})
