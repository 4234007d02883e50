/**
 * Local base images for a machine that has a Docker engine but no image registry: a Debian
 * bookworm root file system from `debootstrap` (imported with `docker import`), and on it the
 * stand-ins for the public images infra/ names — node:20-bookworm-slim (this machine's Node 20
 * and npm), postgres:15-bookworm, redis:7-bookworm, nginx (Debian's packages). Recipes:
 * infra/containers/bases/. infra/containers/local-bases.yml points the compose file at them.
 *
 * Each image carries a label with the hash of its recipe; an image whose label matches is kept,
 * so only the first run pays (about a minute). Usage: `pnpm exec tsx test/containers/local-bases.ts`
 * (also called by `pnpm test:containers`). Runs as root (debootstrap).
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { must, run } from './shell.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const recipes = path.join(root, 'infra/containers/bases');
/** Also inherited by every image built FROM a local base, which lets old builds be found. */
export const LABEL = 'chat.local-base.recipe';

export const localBases = {
  bookworm: 'chat-local/bookworm:minbase',
  node: 'chat-local/node:20-bookworm',
  postgres: 'chat-local/postgres:15-bookworm',
  redis: 'chat-local/redis:7-bookworm',
  nginx: 'chat-local/nginx:bookworm',
} as const;

type BaseName = keyof typeof localBases;

const hash = (...parts: (string | Buffer)[]) => {
  const digest = createHash('sha256');
  for (const part of parts) digest.update(part).update('\0');
  return digest.digest('hex').slice(0, 16);
};

/** The Debian and Debian-security mirrors apt on this machine already uses. */
function debianMirrors(): { debian: string; security: string } {
  const sources = ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d').map((f) => `/etc/apt/sources.list.d/${f}`)]
    .filter((file) => /\.(list|sources)$/.test(file) && existsSync(file))
    .map((file) => readFileSync(file, 'utf8'))
    .join('\n');
  const uris = [...sources.matchAll(/(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(https?:\/\/\S+)/gm)].map((m) => m[1]!.replace(/\/$/, ''));
  const debian = uris.find((uri) => /\/debian$/.test(uri)) ?? 'http://deb.debian.org/debian';
  const security = uris.find((uri) => /\/debian-security$/.test(uri)) ?? 'http://deb.debian.org/debian-security';
  return { debian, security };
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The CA bundle this machine's npm trusts (its TLS proxy's CA, if any, is in it). */
function caBundle(): string {
  const candidates = [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt'];
  const found = candidates.find((file): file is string => Boolean(file) && existsSync(file!));
  if (!found) throw new Error('no CA bundle found (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)');
  return found;
}

async function recipeOf(tag: string): Promise<string | null> {
  const result = await run('docker', ['image', 'inspect', '--format', `{{index .Config.Labels "${LABEL}"}}`, tag], { timeoutMs: 30_000 });
  return result.code === 0 ? result.stdout.trim() : null;
}

async function buildBookworm(recipe: string, mirrors: { debian: string; security: string }): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('debootstrap needs root to build the local bookworm image');
  if ((await run('debootstrap', ['--version'], { timeoutMs: 10_000 })).code !== 0) {
    throw new Error('debootstrap is missing: apt-get install -y debootstrap');
  }
  const dir = mkdtempSync('/var/tmp/chat-bookworm-');
  try {
    await must('debootstrap', ['--variant=minbase', 'bookworm', dir, mirrors.debian], { timeoutMs: 600_000 });
    rmSync(path.join(dir, 'etc/apt/sources.list'), { force: true });
    writeFileSync(
      path.join(dir, 'etc/apt/sources.list.d/debian.sources'),
      [
        `Types: deb\nURIs: ${mirrors.debian}\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
        `Types: deb\nURIs: ${mirrors.security}\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      ].join('\n'),
    );
    for (const folder of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const entry of listDir(path.join(dir, folder))) {
        if (entry !== 'partial' && entry !== 'lock') rmSync(path.join(dir, folder, entry), { recursive: true, force: true });
      }
    }
    await must('sh', ['-c', `tar -C "$1" -c . | docker import -c "LABEL ${LABEL}=$2" -c 'CMD ["bash"]' - "$3"`, 'sh', dir, recipe, localBases.bookworm], {
      timeoutMs: 300_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function buildDerived(name: Exclude<BaseName, 'bookworm'>, recipe: string, files: Record<string, string>): Promise<void> {
  const context = mkdtempSync('/var/tmp/chat-base-');
  try {
    for (const [to, from] of Object.entries(files)) cpSync(from, path.join(context, to), { recursive: true, dereference: true });
    await must(
      'docker',
      ['build', '--quiet', '--build-arg', `BOOKWORM_IMAGE=${localBases.bookworm}`, '--label', `${LABEL}=${recipe}`,
        '-t', localBases[name], '-f', path.join(recipes, `${name}.Dockerfile`), context],
      { timeoutMs: 600_000 },
    );
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

export interface LocalBasesReport {
  built: BaseName[];
  cached: BaseName[];
}

/** Builds whichever local base image is missing or out of date; keeps the others. */
export async function ensureLocalBases(log: (line: string) => void = console.log): Promise<LocalBasesReport> {
  const report: LocalBasesReport = { built: [], cached: [] };
  const mirrors = debianMirrors();
  const bookwormRecipe = hash('debootstrap minbase bookworm', mirrors.debian, mirrors.security, 'v1');
  if ((await recipeOf(localBases.bookworm)) === bookwormRecipe) report.cached.push('bookworm');
  else {
    log(`local bases: debootstrap bookworm from ${mirrors.debian} (about 30 s)`);
    await buildBookworm(bookwormRecipe, mirrors);
    report.built.push('bookworm');
  }

  const recipeText = (file: string) => readFileSync(path.join(recipes, file));
  const node = realpathSync(process.execPath);
  const npm = path.join(path.dirname(path.dirname(node)), 'lib/node_modules/npm');
  if (!existsSync(path.join(npm, 'bin/npm-cli.js'))) throw new Error(`npm not found next to ${node} (looked in ${npm})`);
  const npmVersion = (JSON.parse(readFileSync(path.join(npm, 'package.json'), 'utf8')) as { version: string }).version;
  const ca = caBundle();
  const derived: { name: Exclude<BaseName, 'bookworm'>; recipe: string; files: Record<string, string> }[] = [
    {
      name: 'node',
      recipe: hash(bookwormRecipe, recipeText('node.Dockerfile'), process.version, npmVersion, readFileSync(ca)),
      files: { node, npm, 'ca-bundle.crt': ca },
    },
    {
      name: 'postgres',
      recipe: hash(bookwormRecipe, recipeText('postgres.Dockerfile'), recipeText('postgres-entrypoint.sh')),
      files: { 'postgres-entrypoint.sh': path.join(recipes, 'postgres-entrypoint.sh') },
    },
    {
      name: 'redis',
      recipe: hash(bookwormRecipe, recipeText('redis.Dockerfile'), recipeText('redis-entrypoint.sh')),
      files: { 'redis-entrypoint.sh': path.join(recipes, 'redis-entrypoint.sh') },
    },
    { name: 'nginx', recipe: hash(bookwormRecipe, recipeText('nginx.Dockerfile')), files: {} },
  ];
  for (const image of derived) {
    if ((await recipeOf(localBases[image.name])) === image.recipe) {
      report.cached.push(image.name);
      continue;
    }
    log(`local bases: building ${localBases[image.name]}`);
    await buildDerived(image.name, image.recipe, image.files);
    report.built.push(image.name);
  }
  return report;
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await ensureLocalBases();
  console.log(`local bases: built ${report.built.join(', ') || 'none'}; cached ${report.cached.join(', ') || 'none'}`);
  for (const tag of Object.values(localBases)) console.log(`  ${tag}`);
}
