import { isIPv4, isIPv6 } from 'node:net';

/**
 * Whose budget a guest's request spends (rate-limit.ts): an IPv4 address as it is, an IPv6
 * address by its /64. A single host, or a home or office network, is usually given a whole /64
 * and picks addresses from it freely (privacy extensions make a new one every day, a client
 * can make one per request): a budget per /128 would be no budget at all. The /64 is written
 * out in full (`2001:0db8:0000:0001::/64`), so every spelling of it (zeros compressed or not,
 * upper or lower case, a zone index) is one key. An IPv4-mapped address (`::ffff:a.b.c.d`,
 * what a dual-stack socket reports for an IPv4 client) is that IPv4 address. Anything that is
 * not an address (a proxy's odd X-Forwarded-For entry) is kept as it is.
 */
export function clientAddressKey(address: string): string {
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const groups = ipv6Groups(address.split('%', 1)[0]!);
  if (!groups) return address;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high, low] = [groups[6]!, groups[7]!];
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16).padStart(4, '0'))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (already checked by `isIPv6`), or null. */
function ipv6Groups(address: string): number[] | null {
  let text = address;
  // A dotted IPv4 address in the last 32 bits becomes its two groups.
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  if (dotted.includes('.')) {
    if (!isIPv4(dotted)) return null;
    const [a, b, c, d] = dotted.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const split = (half: string) => (half === '' ? [] : half.split(':'));
  const head = split(halves[0]!);
  const tail = halves.length === 2 ? split(halves[1]!) : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) return null;
  const groups = [...head, ...Array<string>(zeros).fill('0'), ...tail].map((group) => Number.parseInt(group, 16));
  return groups.every((group) => Number.isInteger(group) && group >= 0 && group <= 0xffff) ? groups : null;
}
