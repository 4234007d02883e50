/** Room lookups a gateway pod has made in the database so far (`chat_room_lookups_total`, all results). */
export async function roomLookups(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('chat_room_lookups_total'))
    .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
}
