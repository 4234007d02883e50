/** Room lookups a gateway pod has made in the database so far (`chat_room_lookups_total`, all results). */
export async function roomLookups(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('chat_room_lookups_total'))
    .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
}

/** Errors a gateway pod's Redis clients have counted (`chat_redis_errors_total`), for the clients named. */
export async function redisErrors(url: string, clients: readonly string[]): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^chat_redis_errors_total\{client="([^"]+)"\} (\d+)/gm)]
    .filter((match) => clients.includes(match[1]!))
    .reduce((sum, match) => sum + Number(match[2]), 0);
}
