import { readFileSync } from 'node:fs';

/**
 * A PEM file named in the configuration (a CA, a client certificate or key, mounted from a
 * Kubernetes Secret), read once at start. Throws naming the path and never the content: a
 * key's text must not reach a log line.
 */
export function readPemFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) throw new Error(`${path} holds no PEM block`);
  return text;
}
