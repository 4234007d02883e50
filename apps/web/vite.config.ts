import { defineConfig } from 'vite';

/**
 * The chat page, built to apps/web/dist and served by the gateway at `/`
 * (apps/gateway/src/http/web.routes.ts). `pnpm build:web` from the root.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The gateway's CSP allows no inline script; the polyfill is not needed by modern browsers.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      treeshake: {
        // @chat/protocol is side-effect free: the page takes its event names and error catalog
        // without dragging in the REST schemas (and zod) it does not use.
        moduleSideEffects: (id: string) => !id.includes('/packages/protocol/'),
      },
    },
  },
});
