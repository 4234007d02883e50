import { randomBytes } from 'node:crypto';
import { dropDatabase, ensureDatabase, runMigrations } from '@chat/db';

/** The Postgres server the benches make their private databases on. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A private database on ADMIN_URL's server. `create` makes it and applies the migrations; `drop`
 * removes it once `create` has made it, so a bench can register its cleanup (signals included)
 * before creating anything.
 */
export class BenchDatabase {
  readonly url: string;
  private created = false;

  constructor(readonly name: string) {
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    this.url = url.toString();
  }

  /** `chat_<label>_<random>`: a name no other run uses. */
  static fresh(label: string): BenchDatabase {
    return new BenchDatabase(`chat_${label}_${randomBytes(4).toString('hex')}`);
  }

  async create(): Promise<void> {
    await ensureDatabase(this.url);
    this.created = true;
    await runMigrations(this.url);
  }

  async drop(log: (line: string) => void): Promise<void> {
    if (!this.created) return;
    this.created = false;
    await dropDatabase(this.url).catch((error: unknown) => log(`could not drop ${this.name}: ${String(error)}`));
  }
}
