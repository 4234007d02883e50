import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withPemFiles } from '../src/pem-file.ts';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;

describe('withPemFiles: TLS options whose files every connection reads again', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chat-pem-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the text on disk now, as a copy into a connection\'s options sees it', async () => {
    const ca = join(dir, 'ca.crt');
    await writeFile(ca, pem('first'));
    const options = withPemFiles({ rejectUnauthorized: true }, { ca });
    expect({ ...options }).toEqual({ rejectUnauthorized: true, ca: pem('first') });
    // Renewed as a Secret's files are: a new file renamed into place.
    await writeFile(`${ca}.new`, pem('second'));
    await rename(`${ca}.new`, ca);
    expect(Object.assign({}, options)).toEqual({ rejectUnauthorized: true, ca: pem('second') });
  });

  it('keeps the last good text while a file is gone or holds no PEM block (mid-rotation)', async () => {
    const key = join(dir, 'tls.key');
    await writeFile(key, pem('good'));
    const options = withPemFiles({}, { key });
    await rm(key);
    expect(options.key).toBe(pem('good'));
    await writeFile(key, 'half written');
    expect(options.key).toBe(pem('good'));
    await writeFile(key, pem('renewed'));
    expect(options.key).toBe(pem('renewed'));
  });

  it('fails at start on a missing or broken file, naming the path and never the content', async () => {
    const missing = join(dir, 'missing.crt');
    expect(() => withPemFiles({}, { cert: missing })).toThrow(`cannot read ${missing} (ENOENT)`);
    const broken = join(dir, 'broken.key');
    await writeFile(broken, 'secret-material-without-a-header');
    expect(() => withPemFiles({}, { key: broken })).toThrow(`${broken} holds no PEM block`);
    expect(() => withPemFiles({}, { key: broken })).not.toThrow(/secret-material/);
  });
});
