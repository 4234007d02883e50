/**
 * `pnpm build`: the production bundles. Each app (and the migration CLI) becomes ONE ES module
 * with every dependency inlined — workspace packages from their TypeScript source and the npm
 * packages alike — so a production image needs Node.js and `dist/`, and no node_modules:
 *
 *   dist/gateway.mjs   apps/gateway/src/main.ts
 *   dist/worker.mjs    apps/worker/src/main.ts
 *   dist/migrate.mjs   packages/db/src/migrate-cli.ts (applies dist/migrations to DATABASE_URL)
 *   dist/migrations/   packages/db/migrations, copied (SQL + drizzle's meta/_journal.json)
 *   dist/web/          apps/web/dist (the chat page; `pnpm build:web` first), copied
 *   dist/vendor/       runtime files of packages that read their own files (see VENDOR_ASSETS)
 *
 * Run with `node --enable-source-maps dist/gateway.mjs` (the images do). Usage: `tsx infra/build.ts`;
 * test/infra/bundle.test.ts runs the bundles from a folder with no node_modules, as the images do.
 */
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
/** BUILD_OUT_DIR: elsewhere than dist/ (the bundle test builds into a folder of its own). */
const dist = process.env.BUILD_OUT_DIR ? path.resolve(process.env.BUILD_OUT_DIR) : path.join(root, 'dist');
/** BUILD_WITHOUT_WEB=1: no chat page in the bundle (its gateway then answers 503 at `/`). */
const withoutWeb = process.env.BUILD_WITHOUT_WEB === '1';

const entries = {
  gateway: 'apps/gateway/src/main.ts',
  worker: 'apps/worker/src/main.ts',
  migrate: 'packages/db/src/migrate-cli.ts',
} as const;

/**
 * Optional native accelerators that their packages load inside try/catch and do without:
 * ws (bufferutil, utf-8-validate), msgpackr (msgpackr-extract). Left out of the bundles.
 */
const external = ['bufferutil', 'utf-8-validate', 'msgpackr-extract'];

/**
 * Packages that read files next to their own sources at run time through `__dirname`
 * (Swagger UI serves its static folder). In a bundle `__dirname` is dist/, so for these
 * packages it is rewritten to dist/vendor/<package>/<folder of the file>, and the listed
 * folders are copied there. A package that is not a dependency of the entry's app is skipped.
 */
const VENDOR_ASSETS: Record<string, { app: string; folders: string[] }> = {
  '@fastify/swagger-ui': { app: 'apps/gateway', folders: ['static'] },
};

/**
 * Node ESM has no `require`, `__filename` or `__dirname`; the CommonJS dependencies that esbuild
 * inlines (fastify, ioredis, pino, …) use them, so every bundle defines them first.
 */
const banner = [
  "import { createRequire as __chatCreateRequire } from 'node:module';",
  "import { fileURLToPath as __chatFileURLToPath } from 'node:url';",
  "import { dirname as __chatDirname } from 'node:path';",
  'const require = __chatCreateRequire(import.meta.url);',
  'const __filename = __chatFileURLToPath(import.meta.url);',
  'const __dirname = __chatDirname(__filename);',
  'const __chatDistDir = __dirname;',
].join('\n');

/**
 * Workspace sources that find files next to themselves with `new URL(…, import.meta.url)`. In a
 * bundle import.meta.url is dist/<entry>.mjs, so each such URL is pointed into dist/ and the
 * files are copied there. Any other `import.meta.url` in workspace source fails the build, so a
 * new file-relative path cannot silently break the images.
 */
const FILE_URLS: { file: string; from: string; to: string; copy: { from: string; to: string; hint: string } }[] = [
  {
    // The SQL migrations (drizzle's meta/_journal.json included).
    file: 'packages/db/src/migrate.ts',
    from: "new URL('../migrations', import.meta.url)",
    to: "new URL('./migrations', import.meta.url)",
    copy: { from: 'packages/db/migrations', to: 'migrations', hint: 'the migrations are committed' },
  },
  {
    // The chat page (apps/web), served by the gateway at `/`.
    file: 'apps/gateway/src/http/web.routes.ts',
    from: "new URL('../../../web/dist/', import.meta.url)",
    to: "new URL('./web/', import.meta.url)",
    copy: { from: 'apps/web/dist', to: 'web', hint: 'run `pnpm build:web` first' },
  },
];
const copies = new Map<string, { from: string; to: string; hint: string }>();

const fileUrls: Plugin = {
  name: 'file-urls',
  setup(b) {
    b.onLoad({ filter: /[\\/](apps|packages)[\\/][^\\/]+[\\/]src[\\/].*\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const original = await readFile(args.path, 'utf8');
      const relative = path.relative(root, args.path).split(path.sep).join('/');
      let source = original;
      let checked = original;
      for (const rule of FILE_URLS.filter((candidate) => candidate.file === relative)) {
        if (!source.includes(rule.from)) throw new Error(`${relative} no longer contains ${rule.from}; update infra/build.ts`);
        source = source.replace(rule.from, rule.to);
        checked = checked.replace(rule.from, '');
        copies.set(rule.copy.to, rule.copy);
      }
      const code = checked.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      const unresolved = /new URL\([^)]*import\.meta\.url\)/.exec(code);
      if (unresolved) {
        throw new Error(`${relative}: ${unresolved[0]} points next to the source file, which a bundle does not have; add it to FILE_URLS in infra/build.ts`);
      }
      return { contents: source, loader: 'ts' };
    });
  },
};

function vendorAssets(packages: Record<string, string>): Plugin {
  return {
    name: 'vendor-assets',
    setup(b) {
      for (const [name, packageRoot] of Object.entries(packages)) {
        const escaped = packageRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        b.onLoad({ filter: new RegExp(`^${escaped}[\\\\/].*\\.[cm]?js$`) }, async (args) => {
          const source = await readFile(args.path, 'utf8');
          if (!source.includes('__dirname')) return undefined;
          const folder = path.relative(packageRoot, path.dirname(args.path)).split(path.sep).join('/');
          // No import.meta here: it would turn a CommonJS file into an ES module for esbuild.
          const target = JSON.stringify(`vendor/${name}/${folder}`);
          const replacement = `require('node:path').join(__chatDistDir, ${target})`;
          return { contents: source.replace(/\b__dirname\b/g, replacement), loader: 'js' };
        });
      }
    },
  };
}

/** The packages of VENDOR_ASSETS that `app` depends on, with their real folders. */
function resolveVendorPackages(app: string): Record<string, string> {
  const found: Record<string, string> = {};
  const requireFromApp = createRequire(path.join(root, app, 'package.json'));
  for (const [name, spec] of Object.entries(VENDOR_ASSETS)) {
    if (spec.app !== app) continue;
    try {
      found[name] = path.dirname(requireFromApp.resolve(`${name}/package.json`));
    } catch {
      // not a dependency (yet): nothing to vendor
    }
  }
  return found;
}

async function bundle(name: keyof typeof entries): Promise<void> {
  const entry = entries[name];
  const app = entry.split('/').slice(0, 2).join('/');
  const vendored = resolveVendorPackages(app);
  const result = await build({
    entryPoints: [path.join(root, entry)],
    outfile: path.join(dist, `${name}.mjs`),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external,
    banner: { js: banner },
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    plugins: [fileUrls, vendorAssets(vendored)],
  });
  for (const [pkg, packageRoot] of Object.entries(vendored)) {
    for (const folder of VENDOR_ASSETS[pkg]!.folders) {
      await cp(path.join(packageRoot, folder), path.join(dist, 'vendor', pkg, folder), { recursive: true });
    }
  }
  const bytes = (await stat(path.join(dist, `${name}.mjs`))).size;
  const inputs = Object.keys(result.metafile.inputs).length;
  console.log(`dist/${name}.mjs  ${(bytes / 1024 / 1024).toFixed(2)} MiB from ${inputs} modules`);
}

// The output folder is emptied first: never one that holds the workspace (or is a drive's root).
if (!path.relative(dist, root).startsWith('..') || path.parse(dist).root === dist) {
  throw new Error(`BUILD_OUT_DIR ${dist} would hold the workspace; choose a folder of its own`);
}
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
for (const name of Object.keys(entries) as (keyof typeof entries)[]) await bundle(name);
for (const copy of copies.values()) {
  if (withoutWeb && copy.to === 'web') continue;
  const source = path.join(root, copy.from);
  if (!(await stat(source).catch(() => null))) throw new Error(`${copy.from} does not exist (${copy.hint})`);
  await cp(source, path.join(dist, copy.to), { recursive: true });
  console.log(`dist/${copy.to}/  copied from ${copy.from}`);
}
// Marks dist/ as ES modules for tools that look (the bundles are .mjs anyway).
await writeFile(path.join(dist, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
