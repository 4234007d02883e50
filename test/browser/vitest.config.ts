import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The browser test of the chat page (`pnpm test:browser`): Debian's Chromium driven by
 * playwright-core against real gateway processes. Kept out of the default run by the
 * CHAT_BROWSER_TEST switch in the test file; this config turns it on.
 */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/browser/**/*.test.ts'],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    env: { CHAT_BROWSER_TEST: '1' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
